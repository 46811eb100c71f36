import { once } from 'node:events';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { type TestApp, testApp } from '../helpers/app.ts';

// Over real TCP on loopback: a socket timeout is a property of real time, so these tests measure
// it — with bounds wide enough for a loaded machine.

async function listening(env: Record<string, string>): Promise<{ t: TestApp; port: number }> {
  const t = await testApp(env);
  await t.raw.listen({ host: '127.0.0.1', port: 0 });
  return { t, port: (t.raw.server.address() as AddressInfo).port };
}

async function open(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  return socket;
}

describe('slow and greedy clients', () => {
  it('cuts off a client that sends its headers a byte at a time once the headers timeout passes: 408', async () => {
    const { port } = await listening({ HEARTH_HEADERS_TIMEOUT_MS: '1000' });
    const socket = await open(port);
    let received = '';
    socket.on('data', (d) => {
      received += d;
    });
    const closed = once(socket, 'close');
    const started = performance.now();
    socket.write('GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write('x');
    }, 200);
    await closed;
    clearInterval(drip);
    const elapsed = performance.now() - started;
    expect(received).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(received).toContain('Content-Type: application/fhir+json; charset=utf-8\r\n');
    expect(JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4))).toEqual({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'timeout', diagnostics: 'the request did not arrive in time' }],
    });
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(5000);
  });

  it('does not count the server\'s own work as a silent client: a transaction longer than the idle timeout gets its answer', async () => {
    const { t, port } = await listening({ HEARTH_IDLE_TIMEOUT_MS: '100', HEARTH_BUNDLE_MAX_ENTRIES: '5000' });
    const entry = Array.from({ length: 3000 }, (_, i) => ({
      request: { method: 'POST', url: 'Observation' },
      resource: { resourceType: 'Observation', status: 'final', code: { text: `idle ${i}` }, valueQuantity: { value: i } },
    }));
    const started = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}/fhir`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${await t.token({ scope: 'system/*.cruds', sub: 'idle' })}` },
      body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }),
    });
    const body = (await res.json()) as { entry: unknown[] };
    // (the premise: the server worked far longer than the idle timeout)
    expect(performance.now() - started).toBeGreaterThan(300);
    expect(res.status).toBe(200);
    expect(body.entry).toHaveLength(3000);
    // A connection that stays silent is still closed by the idle timer.
    const socket = await open(port);
    const silent = performance.now();
    await once(socket, 'close');
    expect(performance.now() - silent).toBeLessThan(5000);
    await t.raw.close();
  });

  it('answers headers larger than Node accepts with a 431 OperationOutcome', async () => {
    const { port } = await listening({});
    const socket = await open(port);
    let received = '';
    socket.on('data', (d) => {
      received += d;
    });
    const closed = once(socket, 'close');
    socket.write(`GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(32 * 1024)}\r\n\r\n`);
    await closed;
    expect(received).toMatch(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4)).issue[0]).toEqual({
      severity: 'error',
      code: 'too-long',
      diagnostics: 'the request headers are too large',
    });
  });

  it('holds at most HEARTH_MAX_CONNECTIONS_PER_ADDRESS connections from one address; a closed one frees its place', async () => {
    const { port } = await listening({ HEARTH_MAX_CONNECTIONS_PER_ADDRESS: '3' });
    const kept = [await open(port), await open(port), await open(port)];
    const extra = await open(port);
    await once(extra, 'close');
    // The three kept connections still serve.
    for (const s of kept) {
      s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      const [data] = await once(s, 'data');
      expect(String(data)).toMatch(/^HTTP\/1\.1 200 /);
    }
    kept[0].destroy();
    // Once the server has seen that close, a new connection is served (tried until it is, 5 s at most).
    let served = '';
    for (let i = 0; i < 50 && !served; i++) {
      const next = await open(port);
      next.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      served = await new Promise<string>((resolve) => {
        next.once('data', (d) => resolve(String(d)));
        next.once('close', () => resolve(''));
      });
      next.destroy();
      if (!served) await new Promise((r) => setTimeout(r, 100));
    }
    expect(served).toMatch(/^HTTP\/1\.1 200 /);
    for (const s of kept) s.destroy();
  });
});
