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
 * A copy of `value` whose object keys are in canonical order, so that the native
 * JSON.stringify of it is its canonical JSON: one fast serialization serves as both the stored
 * body and the hashed form.
 */
export function canonicalize<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => canonicalize(v)) as T;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value as object).sort()) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = canonicalize(v);
  }
  return out as T;
}
