/**
 * Canonical JSON for hashing: object keys sorted by UTF-16 code units, no whitespace, strings and
 * numbers as JSON.stringify writes them (RFC 8785's ordering; FHIR JSON has no values that need
 * its number rules beyond what a double round-trips). The same event always hashes the same.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const keys = Object.keys(value as object)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/**
 * `value` with its object keys in canonical order, so that the native JSON.stringify of it is its
 * canonical JSON: one fast serialization serves as both the stored body and the hashed form. An
 * object (or array) already in that order — keys ascending, whatever is below them too — is
 * returned as it is, not copied: buildAuditEvent makes its events so. A key whose value is
 * undefined does not count (JSON.stringify leaves it out, as canonicalJson does).
 */
export function canonicalize<T>(value: T): T {
  if (value === null || typeof value !== 'object' || inOrder(value)) return value;
  if (Array.isArray(value)) return value.map((v) => canonicalize(v)) as T;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value as object).sort()) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = canonicalize(v);
  }
  return out as T;
}

/**
 * Whether every object in `value` has the keys that have a value in ascending order (UTF-16
 * code units, as Array.prototype.sort orders them). Walks without allocating: `for…in` visits a
 * plain object's own keys in Object.keys order.
 */
function inOrder(value: object): boolean {
  if (Array.isArray(value)) {
    for (const v of value) if (typeof v === 'object' && v !== null && !inOrder(v)) return false;
    return true;
  }
  let last: string | undefined;
  for (const k in value) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    if (last !== undefined && !(last < k)) return false;
    last = k;
    if (typeof v === 'object' && v !== null && !inOrder(v)) return false;
  }
  return true;
}
