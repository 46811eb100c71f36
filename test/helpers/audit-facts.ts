import type { Principal } from '../../src/auth/authorize.ts';
import { parseScopes } from '../../src/auth/scopes.ts';

/** A principal with every part an AuditEvent records: a user (fhirUser), its client, a role, a purpose of use, scopes and a token id. */
export const fullPrincipal: Principal = {
  issuer: 'https://i',
  subject: 's',
  clientId: 'c',
  fhirUser: 'Practitioner/1',
  role: 'nurse',
  purposeOfUse: ['TREAT'],
  grants: parseScopes('user/*.rs'),
  scopes: ['user/*.rs', 'openid'],
  tokenId: 'j',
  expiresAt: 1,
};
