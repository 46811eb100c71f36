import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';
import { parseScope } from '../auth/scopes.ts';
import type { Config } from '../config/config.ts';

export const DEV_ISSUER = 'https://dev-issuer.hearth.invalid';

export interface DevTokenOptions {
  scope: string;
  patient?: string;
  role?: string;
  fhirUser?: string;
  subject: string;
  lifetimeSeconds: number;
}

/**
 * A local development issuer: an ES256 key kept under <data dir>/dev-issuer (owner-only), its
 * public JWKS beside it, and tokens signed with it. The server trusts it only when started with
 * HEARTH_AUTH_ISSUER=https://dev-issuer.hearth.invalid and HEARTH_AUTH_JWKS pointing at that JWKS.
 */
export async function devToken(config: Config, o: DevTokenOptions): Promise<{ token: string; jwksPath: string }> {
  const dir = join(config.dataDir, 'dev-issuer');
  const keyPath = join(dir, 'private-key.jwk.json');
  const jwksPath = join(dir, 'jwks.json');
  if (!existsSync(keyPath)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    writeFileSync(keyPath, JSON.stringify({ ...(await exportJWK(privateKey)), kid: 'dev-1', alg: 'ES256' }), { mode: 0o600 });
    chmodSync(keyPath, 0o600);
    writeFileSync(jwksPath, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'dev-1', alg: 'ES256', use: 'sig' }] }));
  }
  const jwk = JSON.parse(readFileSync(keyPath, 'utf8'));
  const key = await importJWK(jwk, 'ES256');
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { scope: o.scope, client_id: 'hearth-dev-token' };
  if (o.patient) claims.patient = o.patient;
  if (o.role) claims[config.auth.roleClaim] = o.role;
  if (o.fhirUser) claims.fhirUser = o.fhirUser;
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'dev-1', typ: 'at+jwt' })
    .setIssuer(DEV_ISSUER)
    .setSubject(o.subject)
    .setAudience(config.baseUrl)
    .setIssuedAt(now)
    .setExpirationTime(now + o.lifetimeSeconds)
    .setJti(crypto.randomUUID())
    .sign(key);
  return { token, jwksPath };
}

/** Scopes that grant data, as the server will read them; a typo is an error here rather than a silent 403 later. */
export function checkScopes(scope: string): string | undefined {
  const bad = scope.split(' ').filter((s) => s && !parseScope(s) && !/^(openid|fhirUser|launch(\/\w+)?|offline_access|online_access)$/.test(s));
  return bad.length ? `not a SMART scope: ${bad.join(', ')}` : undefined;
}

/**
 * With a patient context, system/ and user/ scopes still reach every patient: a token that looks
 * patient-restricted would not be. Named so that the caller can refuse it.
 */
export function widerThanPatient(scope: string): string | undefined {
  const wider = scope.split(' ').filter((s) => {
    const g = parseScope(s);
    return g !== undefined && g.context !== 'patient';
  });
  return wider.length
    ? `--patient with ${wider.join(', ')}: those scopes reach every patient, not only this one; ` +
    'use patient/ scopes, or add --allow-wider-scopes if that is what you mean'
    : undefined;
}
