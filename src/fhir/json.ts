/**
 * FHIR JSON with exact decimals. "The precision of the decimal value has significance" and a
 * decimal's representation must be kept: `1.50` is not `1.5`, `6.0` is not `6`. A JavaScript number
 * cannot hold that, so every number whose JSON text is not the text JavaScript would write for its
 * value (trailing zeros, an exponent, `-0`) is held as a `JSON.rawJSON` leaf carrying its exact
 * text: JSON.stringify writes it back byte for byte — into the stored body, inside an encrypted
 * element, and in the response — and `numberValue` gives the number wherever one is compared.
 * See: https://hl7.org/fhir/R4/datatypes.html#decimal and https://hl7.org/fhir/R4/json.html#primitive
 */

/** A number kept as written. */
export type Decimal = RawJSON;

export const isDecimalText = (value: unknown): value is Decimal => JSON.isRawJSON(value);

/** The numeric value of a JSON number, whether plain or kept as written; undefined for anything else. */
export function numberValue(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  return isDecimalText(value) ? Number(value.rawJSON) : undefined;
}

/** Whether `token` (a JSON number's text) would be written differently from its value. */
export const isLossy = (token: string): boolean => String(Number(token)) !== token;

function keepAsWritten(_key: string, value: unknown, context: { source?: string }): unknown {
  return typeof value === 'number' && context.source !== undefined && isLossy(context.source) ? JSON.rawJSON(context.source) : value;
}

/** JSON.parse keeping every number as written; `lossy` says whether any number needs it (the slow path). */
export function parseExact(text: string, lossy: boolean): unknown {
  return lossy ? JSON.parse(text, keepAsWritten) : JSON.parse(text);
}

// Text JSON.stringify wrote from a document holding a number kept as written: a trailing zero
// after a decimal point, an exponent, -0, or 16 characters or more of digits (where a double may
// round). Matches some numbers
// JavaScript writes itself (1e+21) and text inside strings: then only the slower exact parse runs.
const MAYBE_LOSSY = /(?:^|[:[,])(?:-?\d+\.\d*0(?![\d.])|-?\d+(?:\.\d+)?[eE]|-0(?![\d.])|-?[\d.]{16})/;

/** Parses JSON this server wrote (stored bodies, decrypted elements), numbers exactly as they were sent. */
export function parseStored(text: string): unknown {
  return parseExact(text, MAYBE_LOSSY.test(text));
}

/** A deep copy of a JSON document; numbers kept as written are immutable and shared. */
export function cloneJson<T>(value: T): T {
  if (value === null || typeof value !== 'object' || isDecimalText(value)) return value;
  if (Array.isArray(value)) return value.map(cloneJson) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = cloneJson(v);
  return out as T;
}

/**
 * The document with every number kept as written replaced by `as(text)` (by default its value);
 * the document itself when it holds none.
 */
export function withNumbers<T>(value: T, as: (text: string) => number = Number): T {
  if (isDecimalText(value)) return as(value.rawJSON) as T;
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((v) => {
      const n = withNumbers(v, as);
      if (n !== v) changed = true;
      return n;
    });
    return (changed ? out : value) as T;
  }
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value)) {
    const n = withNumbers(v, as);
    if (n !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = n;
  }
  return (out ?? value) as T;
}
