import type { FastifyInstance } from 'fastify';
import { CLIENT_AUTH_ALGORITHMS } from '../authserver/provider.ts';
import type { Config } from '../config/config.ts';
import type { FhirModel } from '../fhir/definitions.ts';
import { sendResource } from './respond.ts';
import { onlyParams, READ_PARAMS } from '../rest/params.ts';

/**
 * The only FHIR-side routes that need no token, in a plugin scope of their own: the capability
 * statement and SMART discovery. Nothing here reads or reveals stored data.
 */
export async function publicRoutes(
  app: FastifyInstance,
  opts: {
    config: Config;
    model: FhirModel;
    searchDocumentation: (type: string, param: string) => string | undefined;
    /** the built-in authorization server, when on: discovery describes it */
    authServer?: { readonly issuer: string };
  },
): Promise<void> {
  const { config, model, searchDocumentation } = opts;
  const capabilityStatement = {
    ...model.capabilityStatement,
    implementation: { ...model.capabilityStatement.implementation, url: config.baseUrl },
    rest: model.capabilityStatement.rest?.map((r) => ({
      ...r,
      resource: r.resource?.map((res) => ({
        ...res,
        searchParam: res.searchParam?.map((p) => documented(searchDocumentation(res.type, p.name), p)),
      })),
      // See: https://hl7.org/fhir/smart-app-launch/conformance.html (SMART on FHIR security service)
      security: {
        service: [
          {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }],
          },
        ],
        description: 'Bearer access tokens (SMART App Launch 2.x scopes, v1 and v2) from the trusted issuers in .well-known/smart-configuration',
      },
    })),
  };

  app.get('/metadata', async (request, reply) => {
    onlyParams({ query: request.fhirQuery }, READ_PARAMS);
    return sendResource(request, reply, 200, capabilityStatement);
  });

  // See: https://hl7.org/fhir/smart-app-launch/conformance.html#using-well-known
  const smartConfiguration = opts.authServer ? builtInConfiguration(opts.authServer.issuer) : externalConfiguration(config);
  app.get('/.well-known/smart-configuration', async (request, reply) => {
    onlyParams({ query: request.fhirQuery }, new Set());
    reply.header('content-type', 'application/json; charset=utf-8');
    return reply.code(200).send(JSON.stringify(smartConfiguration));
  });
}

/** Examples of the clinical scopes the FHIR API enforces (v2 and v1; granular ones too). */
const CLINICAL_SCOPES = [
  'patient/*.rs',
  'patient/*.cruds',
  'user/*.rs',
  'user/*.cruds',
  'system/*.rs',
  'system/*.cruds',
  'patient/*.read',
  'user/*.read',
  'user/*.write',
  'system/*.read',
  'system/*.write',
];

/**
 * The built-in server as SMART discovery describes it: its endpoints and only the capabilities it
 * has — standalone launch with PKCE for public and confidential apps (users signing in on its
 * pages, a patient picked or implied), EHR launch (the context a trusted EHR registered),
 * OpenID Connect with fhirUser, backend services; SMART scopes v1 and v2.
 */
function builtInConfiguration(issuer: string): Record<string, unknown> {
  return {
    issuer,
    jwks_uri: `${issuer}/jwks`,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    introspection_endpoint: `${issuer}/token/introspection`,
    revocation_endpoint: `${issuer}/token/revocation`,
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic', 'client_secret_post', 'none'],
    token_endpoint_auth_signing_alg_values_supported: [...CLIENT_AUTH_ALGORITHMS],
    scopes_supported: ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access', ...CLINICAL_SCOPES],
    capabilities: [
      'launch-ehr',
      'launch-standalone',
      'authorize-post',
      'client-public',
      'client-confidential-symmetric',
      'client-confidential-asymmetric',
      'context-ehr-patient',
      'context-ehr-encounter',
      'context-standalone-patient',
      'sso-openid-connect',
      'permission-offline',
      'permission-online',
      'permission-patient',
      'permission-user',
      'permission-v1',
      'permission-v2',
    ],
  };
}

/**
 * An external authorization server (HEARTH_AUTH_ISSUER or the first of HEARTH_AUTH_ISSUERS), with
 * the endpoints configured for it and only the capabilities it is said to have: those listed in
 * its HEARTH_AUTH_ISSUERS entry, or else what this server can tell — the permissions the FHIR API
 * enforces, a launch when an authorization endpoint is named, backend services when a token
 * endpoint is. `issuer` and `jwks_uri` only with sso-openid-connect.
 * See: SMART App Launch 2.x, conformance.html (issuer, jwks_uri: "CONDITIONAL ... sso-openid-connect")
 */
function externalConfiguration(config: Config): Record<string, unknown> {
  const first = config.auth.issuers[0];
  const capabilities = first?.capabilities ?? [
    ...(first?.authorizationEndpoint ? ['launch-standalone', 'context-standalone-patient'] : []),
    ...(first?.tokenEndpoint ? ['client-confidential-asymmetric'] : []),
    'permission-patient',
    'permission-user',
    'permission-v1',
    'permission-v2',
  ];
  const sso = capabilities.includes('sso-openid-connect');
  const launches = capabilities.some((c) => c.startsWith('launch-'));
  return {
    ...(sso ? { issuer: first?.issuer, jwks_uri: first?.jwks.kind === 'url' ? first.jwks.url : undefined } : {}),
    authorization_endpoint: first?.authorizationEndpoint,
    token_endpoint: first?.tokenEndpoint,
    grant_types_supported: [...(launches ? ['authorization_code'] : []), ...(capabilities.includes('client-confidential-asymmetric') ? ['client_credentials'] : [])],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    code_challenge_methods_supported: ['S256'],
    scopes_supported: [...CLINICAL_SCOPES, 'openid', 'fhirUser', 'launch', 'launch/patient'],
    capabilities,
    'hearth:trusted_issuers': config.auth.issuers.map((i) => i.issuer),
  };
}

/** A search parameter as published, with what can be asked of it when it reads encrypted elements. */
function documented<P extends { name: string; documentation?: string }>(doc: string | undefined, p: P): P {
  if (!doc) return p;
  return { ...p, documentation: p.documentation ? `${p.documentation} ${doc}` : doc };
}
