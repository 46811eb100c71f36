import { type Server, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Issue, operationOutcome } from '../fhir/errors.ts';

/**
 * What Node refuses before Fastify sees a request — headers too slow (408), too large (431), not
 * HTTP — answered as an OperationOutcome on the raw socket, which is then closed.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const [status, issue]: [number, Issue] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, { code: 'timeout', diagnostics: 'the request did not arrive in time' }]
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, { code: 'too-long', diagnostics: 'the request headers are too large' }]
        : [400, { code: 'structure', diagnostics: 'the request is not valid HTTP' }];
  const body = JSON.stringify(operationOutcome([issue]));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/fhir+json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * At most `max` open connections per client address; the next is closed as it opens. (Behind a
 * proxy every connection comes from the proxy: raise the limit there, or limit at the proxy.)
 */
export function limitConnectionsPerAddress(server: Server, max: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const n = (open.get(address) ?? 0) + 1;
    if (n > max) {
      socket.destroy();
      return;
    }
    open.set(address, n);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left === 0) open.delete(address);
      else open.set(address, left);
    });
  });
}
