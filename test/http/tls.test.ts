import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { type AddressInfo, connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { connect, type ConnectionOptions, createServer } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.ts';
import { type TestApp, testApp } from '../helpers/app.ts';

// HTTPS by default, over real TLS on loopback: the development certificate made on first start,
// TLS 1.2 as the floor, AEAD cipher suites only, and no FHIR over plain HTTP.

describe('TLS by default', () => {
  let t: TestApp;
  let port: number;
  let ca: string;
  beforeAll(async () => {
    t = await testApp({ HEARTH_TLS: 'on' });
    await t.raw.listen({ host: '127.0.0.1', port: 0 });
    port = (t.raw.server.address() as AddressInfo).port;
    ca = readFileSync(join(t.config.dataDir, 'tls', 'dev-cert.pem'), 'utf8');
  });

  /** Handshake result: the protocol and cipher, or the error. */
  const handshake = (options: ConnectionOptions) =>
    new Promise<{ protocol?: string | null; cipher?: string; error?: string }>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...options }, () => {
        resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().name });
        socket.end();
      });
      socket.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    });

  it('serves TLS 1.3 and 1.2 with a certificate valid for 127.0.0.1 and localhost', async () => {
    expect(await handshake({ minVersion: 'TLSv1.3' })).toMatchObject({ protocol: 'TLSv1.3' });
    const v12 = await handshake({ maxVersion: 'TLSv1.2' });
    expect(v12.protocol).toBe('TLSv1.2');
    expect(v12.cipher).toMatch(/GCM|CHACHA20/);
  });

  const LEGACY: [string, ConnectionOptions][] = [
    ['TLS 1.0', { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }],
    ['TLS 1.1', { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }],
    ['TLS 1.2 offering only CBC suites', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA' }],
  ];

  it.each(LEGACY)('refuses a %s handshake — which a server allowing it accepts from the same client', async (_name, options) => {
    const result = await handshake(options);
    expect(result.error, JSON.stringify(result)).toBeDefined();
    // Control: the refusal is this server's, not the client's inability.
    const key = readFileSync(join(t.config.dataDir, 'tls', 'dev-key.pem'), 'utf8');
    const lenient = createServer({ cert: ca, key, minVersion: 'TLSv1', ciphers: 'ALL@SECLEVEL=0' }, (s) => s.end());
    await new Promise<void>((r) => lenient.listen(0, '127.0.0.1', r));
    const control = await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: (lenient.address() as AddressInfo).port, ca, servername: 'localhost', ...options }, () => {
        resolve(String(s.getProtocol()));
        s.end();
      });
      s.on('error', (err) => resolve(`error ${err.message}`));
    });
    lenient.close();
    expect(control).toMatch(/^TLSv1(\.[12])?$/);
  });

  it('answers FHIR over HTTPS with HSTS', async () => {
    const res = await new Promise<{ status?: number; hsts?: string; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/fhir/metadata', ca, servername: 'localhost' }, (r) => {
        let body = '';
        r.on('data', (d) => {
          body += d;
        });
        r.on('end', () => resolve({ status: r.statusCode, hsts: r.headers['strict-transport-security'] as string, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(res.status).toBe(200);
    expect(res.hsts).toBe('max-age=31536000; includeSubDomains');
    expect(JSON.parse(res.body).resourceType).toBe('CapabilityStatement');
    expect(t.config.baseUrl).toMatch(/^https:/);
  });

  it('serves no FHIR over plain HTTP on its port', async () => {
    const socket = tcpConnect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (d) => {
      received += d;
    });
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    socket.write('GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await new Promise((r) => socket.once('close', r));
    expect(received).not.toContain('CapabilityStatement');
    expect(received).not.toMatch(/^HTTP\/1\.1 200/);
  });

  it('keeps the development certificate: a second start on the same data directory serves the same one', async () => {
    const again = await testApp({ HEARTH_TLS: 'on', HEARTH_DATA_DIR: t.config.dataDir });
    expect(readFileSync(join(again.config.dataDir, 'tls', 'dev-cert.pem'), 'utf8')).toBe(ca);
  });
});

describe('a configured certificate', () => {
  it('is refused at start, naming the setting, when it is not a certificate or the key is not its key', async () => {
    const other = await testApp({ HEARTH_TLS: 'on' });
    const dir = join(other.config.dataDir, 'tls');
    const cases: [Record<string, string>, string, string][] = [
      [{ HEARTH_TLS_CERT: '/etc/hostname', HEARTH_TLS_KEY: join(dir, 'dev-key.pem') }, 'HEARTH_TLS_CERT', 'must hold a PEM certificate'],
    ];
    const mismatched = await testApp({ HEARTH_TLS: 'on' });
    cases.push([{ HEARTH_TLS_CERT: join(dir, 'dev-cert.pem'), HEARTH_TLS_KEY: join(mismatched.config.dataDir, 'tls', 'dev-key.pem') }, 'HEARTH_TLS_KEY', 'is not the private key']);
    for (const [env, name, message] of cases) {
      const err = await testApp({ HEARTH_TLS: 'on', ...env }).then(() => undefined, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems[0]).toMatchObject({ name });
      expect((err as ConfigError).problems[0].message).toContain(message);
    }
    // Its own certificate and key: served, with no development certificate made.
    const served = await testApp({ HEARTH_TLS: 'on', HEARTH_TLS_CERT: join(dir, 'dev-cert.pem'), HEARTH_TLS_KEY: join(dir, 'dev-key.pem') });
    expect(served.config.tls).toMatchObject({ kind: 'files' });
    expect(existsSync(join(served.config.dataDir, 'tls'))).toBe(false);
  });
});

describe('plain HTTP only on purpose', () => {
  it.each([
    [{ HEARTH_TLS: 'off' }, 'HEARTH_TLS', 'only behind a TLS-terminating proxy, named in HEARTH_TRUSTED_PROXIES'],
    [{ HEARTH_TLS: 'off', HEARTH_TRUSTED_PROXIES: '10.0.0.0/33' }, 'HEARTH_TRUSTED_PROXIES', 'must be IP addresses or CIDR ranges'],
    [{ HEARTH_TLS_CERT: '/etc/hostname' }, 'HEARTH_TLS_KEY', 'go together'],
    [{ HEARTH_TLS: 'maybe' }, 'HEARTH_TLS', 'must be "on" or "off"'],
  ] as [Record<string, string>, string, string][])('%o is refused at start, naming %s', (env, name, message) => {
    try {
      loadConfig(env);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.find((p) => p.name === name)?.message).toContain(message);
    }
  });

  it('behind a named proxy: plain HTTP, and the base URL says http', () => {
    const config = loadConfig({ HEARTH_TLS: 'off', HEARTH_TRUSTED_PROXIES: '10.0.0.5, 192.168.0.0/16, ::1' });
    expect(config.tls).toEqual({ kind: 'off' });
    expect(config.trustedProxies).toEqual(['10.0.0.5', '192.168.0.0/16', '::1']);
    expect(config.baseUrl).toBe('http://127.0.0.1:8080/fhir');
    expect(loadConfig({}).baseUrl).toBe('https://127.0.0.1:8080/fhir');
  });
});
