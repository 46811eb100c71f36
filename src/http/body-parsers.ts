import type { FastifyInstance } from 'fastify';
import { FhirError } from '../fhir/errors.ts';
import { SEARCH_LIMITS } from '../fhir/search-parser.ts';
import { parseStrictJson } from './strict-json.ts';

/** A form-encoded body (POST _search), kept apart so that no handler mistakes it for a resource. */
export class FormBody {
  readonly pairs: [string, string][];
  constructor(pairs: [string, string][]) {
    this.pairs = pairs;
  }
}

/**
 * Replaces Fastify's JSON parser: FHIR JSON goes through the strict parser (depth, duplicate and
 * prototype keys, number range); form bodies become FormBody. Anything else is 415.
 * See: https://hl7.org/fhir/R4/http.html#mime-type
 */
export function registerBodyParsers(app: FastifyInstance, maxDepth: number): void {
  app.removeAllContentTypeParsers();
  const json = (_req: unknown, body: string | Buffer, done: (err: Error | null, value?: unknown) => void) => {
    try {
      const text = typeof body === 'string' ? body : body.toString('utf8');
      if (text.trim() === '') {
        done(new FhirError('HEARTH_EMPTY_BODY', { code: 'structure', diagnostics: 'the request body is empty' }));
        return;
      }
      done(null, parseStrictJson(text, maxDepth));
    } catch (err) {
      done(err as Error);
    }
  };
  app.addContentTypeParser(['application/fhir+json', 'application/json'], { parseAs: 'string' }, json);
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    const bytes = Buffer.byteLength(body as string);
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
      done(null, new FormBody([...new URLSearchParams(body as string)]));
    } catch {
      done(new FhirError('HEARTH_BAD_FORM', { code: 'structure', diagnostics: 'the form body is malformed' }));
    }
  });
}
