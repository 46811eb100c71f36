import * as client from 'openid-client';

// An app of the built-in authorization server, as openid-client plays it in the sign-in suites.

/** A public app's openid-client configuration, discovered from `${origin}/auth` (plain HTTP on loopback). */
export function publicApp(origin: string, clientId: string): Promise<client.Configuration> {
  return client.discovery(new URL(`${origin}/auth`), clientId, { id_token_signed_response_alg: 'ES256' }, client.None(), {
    execute: [client.allowInsecureRequests],
  });
}

export interface Launch {
  url: URL;
  verifier: string;
  state: string;
}

/** An authorization request as a SMART app makes it: PKCE S256, state, aud; `extra` adds or overrides parameters. */
export async function authorizationUrl(
  c: client.Configuration,
  o: { redirect: string; aud: string; scope: string; extra?: Record<string, string> },
): Promise<Launch> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(c, {
    redirect_uri: o.redirect,
    scope: o.scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    aud: o.aud,
    ...o.extra,
  });
  return { url, verifier, state };
}
