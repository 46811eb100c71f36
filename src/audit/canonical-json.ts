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
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const c = canonicalize(v);
      if (c !== v && !copy) copy = value.slice(0, i);
      copy?.push(c);
    }
    return (copy ?? value) as T;
  }
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  // Keys out of order: a copy in order. In order: a copy only from the first value that changes.
  const sorted = ascending(o, keys);
  if (!sorted) keys.sort();
  let out: Record<string, unknown> | undefined = sorted ? undefined : {};
  for (let i = 0; i < keys.length; i++) {
    const v = o[keys[i]];
    if (v === undefined) continue;
    const c = canonicalize(v);
    if (!out && c !== v) {
      out = {};
      for (let j = 0; j < i; j++) if (o[keys[j]] !== undefined) out[keys[j]] = o[keys[j]];
    }
    if (out) out[keys[i]] = c;
  }
  return (out ?? value) as T;
}

/** Whether the keys of `o` that have a value ascend (UTF-16 code units, as Array.prototype.sort orders them). */
function ascending(o: Record<string, unknown>, keys: readonly string[]): boolean {
  let last: string | undefined;
  for (const k of keys) {
    if (o[k] === undefined) continue;
    if (last !== undefined && !(last < k)) return false;
    last = k;
  }
  return true;
}
