import { type Grant, parseScope } from '../auth/scopes.ts';

/**
 * Whether `allowed` (a scope a client was registered with) covers `requested`: the same context,
 * the same type or `*`, every permission of the request among the allowed ones, and — when the
 * allowed scope is granular — the same restriction. `system/*.rs` covers `system/Patient.r` and
 * `system/Observation.s?category=laboratory`; `system/Patient.rs` does not cover `system/*.rs`.
 */
export function covers(allowed: Grant, requested: Grant): boolean {
  if (allowed.context !== requested.context) return false;
  if (allowed.type !== '*' && allowed.type !== requested.type) return false;
  for (const p of requested.permissions) if (!allowed.permissions.has(p)) return false;
  if (!allowed.filter) return true;
  const key = (f: readonly (readonly [string, string])[]) => f.map(([k, v]) => `${k}=${v}`).sort().join('&');
  return requested.filter !== undefined && key(allowed.filter) === key(requested.filter);
}

/**
 * What a client gets of the clinical-data scopes it asks for: each requested scope that one of
 * its registered scopes covers, as written; the others are dropped (RFC 6749 §3.3: the server may
 * grant less than asked, and says what it granted). Non-clinical scopes are not granted here.
 */
export function grantable(requested: readonly string[], allowed: readonly string[]): string[] {
  const registered = allowed.map(parseScope).filter((g): g is Grant => g !== undefined);
  return requested.filter((s) => {
    const g = parseScope(s);
    return g !== undefined && registered.some((a) => covers(a, g));
  });
}
