import { PassThrough, type Readable, type Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { FhirError } from '../fhir/errors.ts';

// The codings a body may come in; the body limit applies to what they decode to (a bomb stops there).
const DECODERS: Record<string, () => Transform> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/**
 * Request bodies in `Content-Encoding` gzip, deflate or br are decoded before parsing; any other
 * coding (or several stacked) is refused with 415 — never parsed as if it were plain. Fastify's
 * body limit counts the decoded bytes, so a compression bomb ends in 413.
 * See: https://www.rfc-editor.org/rfc/rfc9110#section-8.4 (415 for an unsupported content coding)
 */
export function registerContentEncoding(app: FastifyInstance): void {
  app.addHook('preParsing', async (request, _reply, payload) => {
    const header = request.headers['content-encoding'];
    // No body to decode (a GET saying gzip): nothing to do, and nothing to fail on.
    const bodyless = request.headers['transfer-encoding'] === undefined && Number(request.headers['content-length'] ?? 0) === 0;
    if (header === undefined || bodyless) return payload;
    const codings = header
      .toLowerCase()
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== '' && c !== 'identity');
    if (codings.length === 0) return payload;
    const decoder = codings.length === 1 ? DECODERS[codings[0]] : undefined;
    if (!decoder) {
      throw new FhirError('HEARTH_MEDIA_TYPE', {
        code: 'not-supported',
        diagnostics: `Content-Encoding ${header.slice(0, 60)} is not supported: send the body plain, or in gzip, deflate or br`,
      });
    }
    return decoded(payload, decoder(), codings[0]);
  });
}

/** The decoded stream, counting the encoded bytes (Fastify checks them against Content-Length). */
function decoded(payload: Readable, decoder: Transform, coding: string): Readable {
  const out = Object.assign(new PassThrough(), { receivedEncodedLength: 0 });
  payload.on('data', (chunk: Buffer) => {
    out.receivedEncodedLength += chunk.length;
  });
  payload.on('error', (err) => out.destroy(err));
  decoder.on('error', () => out.destroy(new FhirError('HEARTH_BAD_ENCODING', { code: 'structure', diagnostics: `the request body is not valid ${coding}` })));
  // Fastify reads (and hears the errors of) bodies it parses; a body it leaves unread (a GET's)
  // must not turn a decoding error into an uncaught exception that stops the server.
  out.on('error', () => undefined);
  payload.pipe(decoder).pipe(out);
  return out;
}
