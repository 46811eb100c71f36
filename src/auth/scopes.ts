// SMART App Launch clinical-data scopes, v1 and v2, including granular (search-parameter) scopes.
// See: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html

export type Permission = 'c' | 'r' | 'u' | 'd' | 's';
export type ScopeContext = 'patient' | 'user' | 'system';

export interface Grant {
  readonly context: ScopeContext;
  /** a resource type, or '*' for every type */
  readonly type: string;
  readonly permissions: ReadonlySet<Permission>;
  /** granular v2 scopes: search parameters every accessible resource must match, as name/value pairs */
  readonly filter?: readonly (readonly [string, string])[];
  /** the scope as written */
  readonly scope: string;
}

const ALL: readonly Permission[] = ['c', 'r', 'u', 'd', 's'];
// v1: read → r s, write → c u d, * → all. See: scopes-and-launch-context.html#scopes-for-requesting-fhir-resources
const V1: Record<string, readonly Permission[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': ALL };

// Anchored: context / type . permissions [? query]. v2 letters must be in c r u d s order, each at
// most once and at least one; anything else is not a clinical scope and grants nothing.
const SCOPE_RE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]{0,63})\.(read|write|\*|c?r?u?d?s?)(?:\?(.+))?$/;
const QUERY_PAIR_RE = /^[A-Za-z_][A-Za-z0-9_\-.:]*=[^&]+$/;

/**
 * Parses one scope. Returns undefined for anything that is not a well-formed clinical-data scope
 * (identity and launch scopes such as `openid` or `launch/patient` included): those grant no data.
 */
export function parseScope(scope: string): Grant | undefined {
  const m = SCOPE_RE.exec(scope);
  if (!m) return undefined;
  const [, context, type, perms, query] = m;
  let permissions: readonly Permission[];
  if (perms in V1) {
    if (query !== undefined) return undefined; // granular scopes exist only in v2 syntax
    permissions = V1[perms];
  } else {
    if (perms === '') return undefined;
    permissions = [...perms] as Permission[];
  }
  let filter: [string, string][] | undefined;
  if (query !== undefined) {
    if (type === '*') return undefined; // a search parameter belongs to one type
    const parts = query.split('&');
    if (!parts.every((p) => QUERY_PAIR_RE.test(p))) return undefined;
    try {
      filter = parts.map((p) => {
        const i = p.indexOf('=');
        return [decodeURIComponent(p.slice(0, i)), decodeURIComponent(p.slice(i + 1))];
      });
    } catch {
      return undefined;
    }
  }
  return { context: context as ScopeContext, type, permissions: new Set(permissions), filter, scope };
}

/** The `scope` claim (space-separated string, or a list as some issuers send) → grants. */
export function parseScopes(claim: unknown): Grant[] {
  const list = typeof claim === 'string' ? claim.split(' ') : Array.isArray(claim) ? claim : [];
  const grants: Grant[] = [];
  for (const s of list) {
    if (typeof s !== 'string' || s.length > 1024) continue;
    const g = parseScope(s);
    if (g) grants.push(g);
  }
  return grants;
}
