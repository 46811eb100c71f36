import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FhirError } from '../fhir/errors.ts';
import { SEARCH_LIMITS } from '../fhir/search-parser.ts';
import { registerContentEncoding } from './content-encoding.ts';
import { parseStrictJson } from './strict-json.ts';

/** A form-encoded body (POST _search), kept apart so that no handler mistakes it for a resource. */
export class FormBody {
  readonly pairs: [string, string][];
  constructor(pairs: [string, string][]) {
    this.pairs = pairs;
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A body as text: UTF-8 only, and valid. Another charset is refused (415) rather than misread
 * (a Latin-1 "Müller" would be stored as "M\uFFFDller"), and so are invalid bytes (400).
 * See: https://hl7.org/fhir/R4/http.html#mime-type (FHIR bodies are UTF-8)
 */
function decodeBody(req: FastifyRequest, body: string | Buffer): string {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new FhirError('HEARTH_MEDIA_TYPE', {
      code: 'not-supported',
      diagnostics: `charset ${charset.slice(0, 40)} is not accepted: request bodies are UTF-8 (charset=utf-8, or no charset)`,
    });
  }
  if (typeof body === 'string') return body;
  try {
    return UTF8.decode(body);
  } catch {
    throw new FhirError('HEARTH_BAD_ENCODING', { code: 'structure', diagnostics: 'the request body is not valid UTF-8' });
  }
}

/**
 * Replaces Fastify's JSON parser: FHIR JSON goes through the strict parser (depth, duplicate and
 * prototype keys, number range); form bodies become FormBody. Anything else is 415.
 * See: https://hl7.org/fhir/R4/http.html#mime-type
 */
export function registerBodyParsers(app: FastifyInstance, maxDepth: number): void {
  app.removeAllContentTypeParsers();
  registerContentEncoding(app);
  const json = (req: FastifyRequest, body: string | Buffer, done: (err: Error | null, value?: unknown) => void) => {
    try {
      const text = decodeBody(req, body);
      if (text.trim() === '') {
        done(new FhirError('HEARTH_EMPTY_BODY', { code: 'structure', diagnostics: 'the request body is empty' }));
        return;
      }
      done(null, parseStrictJson(text, maxDepth));
    } catch (err) {
      done(err as Error);
    }
  };
  app.addContentTypeParser(['application/fhir+json', 'application/json'], { parseAs: 'buffer' }, json);
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (req, raw, done) => {
    let body: string;
    try {
      body = decodeBody(req, raw);
    } catch (err) {
      done(err as Error);
      return;
    }
    const bytes = Buffer.byteLength(body);
    if (bytes > SEARCH_LIMITS.formBytes) {
      done(
        new FhirError('HEARTH_SEARCH_LIMIT', {
          code: 'too-costly',
          diagnostics: `the form body of the search is ${bytes} bytes; the limit is ${SEARCH_LIMITS.formBytes}`,
        }),
      );
      return;
    }
    try {
      done(null, new FormBody([...new URLSearchParams(body)]));
    } catch {
      done(new FhirError('HEARTH_BAD_FORM', { code: 'structure', diagnostics: 'the form body is malformed' }));
    }
  });
}
