import { badRequest } from '../fhir/errors.ts';

// Keys that could reach an object's prototype chain in code that copies or merges JSON.
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
// FHIR decimals carry at most 18 significant digits, and every number must survive a double
// unchanged: what is stored is what was sent.
// See: https://hl7.org/fhir/R4/datatypes.html#decimal
const MAX_SIGNIFICANT_DIGITS = 18;

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * Parses a request body as JSON the way a PHI server must: nesting deeper than `maxDepth`,
 * duplicate keys, prototype keys and numbers a double cannot hold are rejected before any
 * recursive code (JSON.parse, the validator, a serializer) sees the document.
 */
export function parseStrictJson(text: string, maxDepth: number): unknown {
  scan(text, maxDepth);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest('HEARTH_MALFORMED_JSON', `malformed JSON: ${(err as Error).message}`, undefined, 'structure');
  }
}

function scan(text: string, maxDepth: number): void {
  // One set of seen keys per open object, null for arrays.
  const stack: (Set<string> | null)[] = [];
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
      stack.push(c === 0x7b ? new Set() : null);
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
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
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
      if (i >= n) return; // unterminated: JSON.parse reports it
      i++;
      if (expectKey) {
        const raw = text.slice(start + 1, i - 1);
        let key = raw;
        if (escaped) {
          try {
            key = JSON.parse(text.slice(start, i));
          } catch {
            return;
          }
        }
        const seen = stack[stack.length - 1] as Set<string>;
        if (FORBIDDEN_KEYS.has(key)) {
          throw badRequest('HEARTH_FORBIDDEN_KEY', `JSON key "${key}" is not allowed`, undefined, 'structure');
        }
        if (seen.has(key))
          throw badRequest('HEARTH_DUPLICATE_KEY', `duplicate JSON key "${key}"`, undefined, 'structure');
        seen.add(key);
        expectKey = false;
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
      checkNumber(text.slice(start, i));
      continue;
    }
    // Literals (true/false/null) and anything malformed: JSON.parse decides.
    i++;
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
  if (significant.length > MAX_SIGNIFICANT_DIGITS) {
    throw badRequest(
      'HEARTH_NUMBER_PRECISION',
      `number ${token.slice(0, 40)} has more than ${MAX_SIGNIFICANT_DIGITS} significant digits`,
      undefined,
      'value',
    );
  }
  // A double holds 15 to 17 significant digits: refuse a number that would come back different.
  if (significant.length > 15) {
    const back = Math.abs(value)
      .toPrecision(significant.length)
      .replace(/e.*$/, '')
      .replace('.', '')
      .replace(/^0+/, '')
      .replace(/0+$/, '');
    if (back !== significant) {
      throw badRequest(
        'HEARTH_NUMBER_PRECISION',
        `number ${token.slice(0, 40)} cannot be stored without losing digits`,
        undefined,
        'value',
      );
    }
  }
}
