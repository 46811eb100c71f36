import { badRequest, type FhirError } from '../fhir/errors.ts';
import { isLossy, parseExact } from '../fhir/json.ts';

// Keys that could reach an object's prototype chain in code that copies or merges JSON.
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
// FHIR decimals carry at most 18 significant digits. What is stored is what was sent: a number a
// double would change is kept as written (fhir/json.ts); search compares its value as a double.
// See: https://hl7.org/fhir/R4/datatypes.html#decimal
const MAX_SIGNIFICANT_DIGITS = 18;

// R4 strings "SHALL NOT exceed 1MB (1024*1024 characters)" and should hold no character below
// U+0020 but tab, CR and LF: Hearth refuses both (a control character in PHI is an injection or
// a corruption, never data).
// See: https://hl7.org/fhir/R4/datatypes.html#string
const MAX_STRING_CHARS = 1024 * 1024;
const ALLOWED_CONTROLS = new Set([0x09, 0x0a, 0x0d]);

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** A refusal found while scanning, with where it is (element names and array indexes from the root). */
class ScanError extends Error {
  readonly where: readonly (string | number)[];
  readonly make: (expression: string | undefined) => Error;
  constructor(where: readonly (string | number)[], make: (expression: string | undefined) => Error) {
    super('scan');
    this.where = where;
    this.make = make;
  }
}

/**
 * Parses a request body as JSON the way a PHI server must: nesting deeper than `maxDepth`,
 * duplicate keys, prototype keys, numbers out of a double's range (too large, or so small they
 * would become 0), over 18 significant digits and strings R4 forbids (control characters, lone surrogates, over
 * 1 MB) are rejected before any recursive code (JSON.parse, the validator, a serializer) sees
 * the document; a refusal names the element (`Patient.name[0].family`). Numbers are kept as
 * written (fhir/json.ts).
 */
export function parseStrictJson(text: string, maxDepth: number): unknown {
  let lossy: boolean;
  try {
    lossy = scan(text, maxDepth);
  } catch (err) {
    if (!(err instanceof ScanError)) throw err;
    const type = /"resourceType"\s*:\s*"([A-Za-z]{1,64})"/.exec(text)?.[1];
    throw err.make(expressionOf(type, err.where));
  }
  try {
    return parseExact(text, lossy);
  } catch (err) {
    throw badRequest('HEARTH_MALFORMED_JSON', `malformed JSON: ${(err as Error).message}`, undefined, 'structure');
  }
}

/** `Patient.name[0].family`; without the resource type, the path from the root. */
function expressionOf(type: string | undefined, where: readonly (string | number)[]): string | undefined {
  let out = type ?? '';
  for (const step of where) out += typeof step === 'number' ? `[${step}]` : out === '' ? step : `.${step}`;
  return out === '' ? undefined : out;
}

/** Where a value stands: per open object the key being filled, per open array the index. */
type Frame = { keys: Set<string>; key: string | undefined } | { index: number };

/** Refuses what must not reach JSON.parse; says whether a number must be kept as written. */
function scan(text: string, maxDepth: number): boolean {
  let lossy = false;
  const stack: Frame[] = [];
  const where = () => stack.map((f) => ('index' in f ? f.index : (f.key ?? '')));
  let expectKey = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (WS.has(c)) {
      i++;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= maxDepth) {
        throw badRequest(
          'HEARTH_JSON_TOO_DEEP',
          `JSON nesting exceeds the limit of ${maxDepth} levels`,
          undefined,
          'too-long',
        );
      }
      stack.push(c === 0x7b ? { keys: new Set(), key: undefined } : { index: 0 });
      expectKey = c === 0x7b;
      i++;
      continue;
    }
    if (c === 0x7d || c === 0x5d) {
      stack.pop();
      expectKey = false;
      i++;
      continue;
    }
    if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top && 'index' in top) top.index++;
      expectKey = top !== undefined && !('index' in top);
      i++;
      continue;
    }
    if (c === 0x3a /* : */) {
      expectKey = false;
      i++;
      continue;
    }
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) {
          escaped = true;
          i += 2;
          continue;
        }
        if (d === 0x22) break;
        i++;
      }
      if (i >= n) return lossy; // unterminated: JSON.parse reports it
      i++;
      if (expectKey) {
        const raw = text.slice(start + 1, i - 1);
        let key = raw;
        if (escaped) {
          try {
            key = JSON.parse(text.slice(start, i));
          } catch {
            return lossy;
          }
        }
        const frame = stack[stack.length - 1] as { keys: Set<string>; key: string | undefined };
        if (FORBIDDEN_KEYS.has(key)) {
          throw badRequest('HEARTH_FORBIDDEN_KEY', `JSON key "${key}" is not allowed`, undefined, 'structure');
        }
        if (frame.keys.has(key))
          throw badRequest('HEARTH_DUPLICATE_KEY', `duplicate JSON key "${key}"`, undefined, 'structure');
        frame.keys.add(key);
        frame.key = key;
        expectKey = false;
      } else {
        checkString(text, start, i, escaped, where);
      }
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      const start = i;
      while (i < n) {
        const d = text.charCodeAt(i);
        if ((d >= 0x30 && d <= 0x39) || d === 0x2d || d === 0x2b || d === 0x2e || d === 0x65 || d === 0x45) i++;
        else break;
      }
      const token = text.slice(start, i);
      try {
        checkNumber(token);
        lossy ||= isLossy(token);
      } catch (err) {
        throw new ScanError(where(), (expression) => withExpression(err as FhirError, expression));
      }
      continue;
    }
    // Literals (true/false/null) and anything malformed: JSON.parse decides.
    i++;
  }
  return lossy;
}

/** The same refusal, now naming where it is. */
function withExpression(err: FhirError, expression: string | undefined): FhirError {
  if (expression && err.issues[0]) err.issues[0].expression = expression;
  return err;
}

/**
 * A string value (the token text[start, end), quotes included): escaped control characters
 * (\b, \f, \u0000-\u001f but tab, LF, CR), escaped lone surrogates, more than 1 MB. Unescaped
 * control characters are not JSON (JSON.parse refuses them); unescaped surrogates cannot come out
 * of a body decoded as UTF-8.
 */
function checkString(text: string, start: number, end: number, escaped: boolean, where: () => (string | number)[]): void {
  const refuse = (diagnostics: string, issue: 'value' | 'too-long') => {
    throw new ScanError(where(), (expression) => badRequest('HEARTH_BAD_STRING', diagnostics, expression, issue));
  };
  // Escapes only shorten: the raw length bounds the string's (a malformed one is JSON.parse's to report).
  if (end - start - 2 > MAX_STRING_CHARS && (!escaped || decodedLength(text.slice(start, end)) > MAX_STRING_CHARS)) {
    refuse(`a string is longer than ${MAX_STRING_CHARS} characters (1 MB, the R4 limit)`, 'too-long');
  }
  if (!escaped) return;
  let pendingHigh = false;
  for (let j = start + 1; j < end - 1; j++) {
    if (text.charCodeAt(j) !== 0x5c) {
      if (pendingHigh) refuse(LONE_HIGH, 'value');
      continue;
    }
    const e = text[j + 1];
    if (e === 'u') {
      const code = Number.parseInt(text.slice(j + 2, j + 6), 16);
      const high = code >= 0xd800 && code <= 0xdbff;
      const low = code >= 0xdc00 && code <= 0xdfff;
      if (pendingHigh && !low) refuse(LONE_HIGH, 'value');
      if (low && !pendingHigh) refuse('a string holds a lone surrogate (\\uDC00-\\uDFFF with no high surrogate before it)', 'value');
      if (code < 0x20 && !ALLOWED_CONTROLS.has(code)) refuse(`a string holds the control character U+${code.toString(16).padStart(4, '0').toUpperCase()}`, 'value');
      pendingHigh = high;
      j += 5;
      continue;
    }
    if (pendingHigh) refuse(LONE_HIGH, 'value');
    if (e === 'b' || e === 'f') refuse(`a string holds the control character U+000${e === 'b' ? '8' : 'C'}`, 'value');
    j += 1;
  }
  if (pendingHigh) refuse(LONE_HIGH, 'value');
}

const LONE_HIGH = 'a string holds a lone surrogate (\\uD800-\\uDBFF not followed by a low surrogate)';

function decodedLength(token: string): number {
  try {
    return (JSON.parse(token) as string).length;
  } catch {
    return 0;
  }
}

function checkNumber(token: string): void {
  const value = Number(token);
  if (!Number.isFinite(value)) {
    throw badRequest('HEARTH_NUMBER_RANGE', `number ${token.slice(0, 40)} is out of range`, undefined, 'value');
  }
  const m = /^-?(\d+)(?:\.(\d+))?(?:[eE][+-]?\d+)?$/.exec(token);
  if (!m) return; // not a JSON number: JSON.parse reports it
  const significant = `${m[1]}${m[2] ?? ''}`.replace(/^0+/, '').replace(/0+$/, '');
  if (value === 0 && significant !== '') {
    throw badRequest('HEARTH_NUMBER_RANGE', `number ${token.slice(0, 40)} is too small to be stored (it would become 0)`, undefined, 'value');
  }
  if (significant.length > MAX_SIGNIFICANT_DIGITS) {
    throw badRequest(
      'HEARTH_NUMBER_PRECISION',
      `number ${token.slice(0, 40)} has more than ${MAX_SIGNIFICANT_DIGITS} significant digits`,
      undefined,
      'value',
    );
  }
}
