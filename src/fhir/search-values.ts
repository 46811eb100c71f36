// Value normalisation shared by index extraction (write time) and query parsing (search time),
// so that both sides of every comparison are computed by the same code.

/** Smallest and largest instants a JavaScript Date can hold: stand-ins for open period ends. */
export const MIN_TIME = -8.64e15;
export const MAX_TIME = 8.64e15;

// See: https://hl7.org/fhir/R4/datatypes.html#dateTime (partial dates, optional seconds fraction and zone)
const DATE_RE =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * The half-open range [lo, hi) in epoch milliseconds that a FHIR date, dateTime or instant
 * covers at its precision ("2020" is the whole year). Values without a zone are read as UTC.
 * See: https://hl7.org/fhir/R4/search.html#date
 */
export function dateRange(value: string): { lo: number; hi: number } | undefined {
  const m = DATE_RE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  const month = mo ? Number(mo) - 1 : 0;
  const day = d ? Number(d) : 1;
  if (mo && (month < 0 || month > 11)) return undefined;
  if (d) {
    const probe = new Date(Date.UTC(year, month, day));
    if (probe.getUTCMonth() !== month || day < 1) return undefined;
  }
  if (h && (Number(h) > 23 || Number(mi) > 59 || (s && Number(s) > 59))) return undefined;
  let offset = 0;
  if (tz && tz !== 'Z') {
    const sign = tz[0] === '-' ? -1 : 1;
    offset = sign * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(4, 6))) * 60_000;
  }
  const base = Date.UTC(year, month, day, h ? Number(h) : 0, mi ? Number(mi) : 0, s ? Number(s) : 0);
  const ms = frac ? Number(frac.padEnd(3, '0').slice(0, 3)) : 0;
  const lo = base + ms - offset;
  let hi: number;
  if (!mo) hi = Date.UTC(year + 1, 0, 1);
  else if (!d) hi = Date.UTC(year, month + 1, 1);
  else if (!h) hi = Date.UTC(year, month, day + 1);
  else if (!s) hi = lo + 60_000;
  else if (!frac) hi = lo + 1000;
  else hi = lo + 1;
  return { lo, hi };
}

/**
 * The implicit range of a decimal search value: "100" means [99.5, 100.5).
 * See: https://hl7.org/fhir/R4/search.html#number
 */
export function numberRange(token: string): { value: number; lo: number; hi: number } | undefined {
  if (!/^-?(\d+)(\.\d+)?([eE][+-]?\d+)?$/.test(token)) return undefined;
  const value = Number(token);
  if (!Number.isFinite(value)) return undefined;
  const [mantissa, exp] = token.toLowerCase().split('e');
  const decimals = (mantissa.split('.')[1] ?? '').length - (exp ? Number(exp) : 0);
  const half = 0.5 * 10 ** -decimals;
  return { value, lo: value - half, hi: value + half };
}

/**
 * String search matching is case- and accent-insensitive and ignores punctuation runs.
 * See: https://hl7.org/fhir/R4/search.html#string
 */
export function normalizeString(value: string): string {
  return value
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim();
}

/** A reference as stored and searched: `Type/id` for local references, the URL otherwise. */
export function normalizeReference(reference: string, baseUrl: string): string {
  let ref = reference;
  if (ref.startsWith(`${baseUrl}/`)) ref = ref.slice(baseUrl.length + 1);
  return ref.replace(/\/_history\/[^/]+$/, '');
}

/** The parts of a HumanName and of an Address: each is a string value of a parameter over either. */
export const STRING_PARTS: readonly string[] = ['family', 'given', 'prefix', 'suffix', 'text', 'line', 'city', 'district', 'state', 'postalCode', 'country'];
