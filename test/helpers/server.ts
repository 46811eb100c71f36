import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { freePort, ISSUER, JWKS_FILE, signToken } from './app.ts';

const entry = new URL('../../src/server.ts', import.meta.url).pathname;

export interface RunningServer {
  child: ChildProcess;
  output: () => string;
  base: string;
  /** a system/*.cruds token for this server */
  token: string;
}

/**
 * A whole server under test on loopback: trusting the test issuer, no rate limit unless asked
 * (load tests send as fast as they can from one client), plain HTTP as behind a proxy unless
 * asked (tls.test.ts).
 */
export const LOOPBACK_SERVER_ENV = {
  HEARTH_AUTH_ISSUER: ISSUER,
  HEARTH_AUTH_JWKS: JWKS_FILE,
  HEARTH_RATE_LIMIT: 'off',
  HEARTH_TLS: 'off',
  HEARTH_TRUSTED_PROXIES: '127.0.0.1',
} as const;

/** Starts `node src/server.ts` as a real process trusting the test issuer; resolves once metadata answers. */
export async function startServer(env: Record<string, string>): Promise<RunningServer> {
  const port = await freePort();
  let out = '';
  const child = spawn(process.execPath, [entry], {
    env: { PATH: process.env.PATH ?? '', HEARTH_PORT: String(port), ...LOOPBACK_SERVER_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const base = `http://127.0.0.1:${port}/fhir`;
  const token = await signToken({ sub: 'ops', scope: 'system/*.cruds' }, { audience: base, lifetime: 3600 });
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) throw new Error(`server exited: ${out}`);
    try {
      if ((await fetch(`${base}/metadata`)).ok) return { child, output: () => out, base, token };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`server did not answer: ${out}`);
}

export async function stopServer(r: RunningServer, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (r.child.exitCode !== null) return r.child.exitCode;
  const exited = once(r.child, 'exit');
  r.child.kill(signal);
  const [code] = await exited;
  return code as number | null;
}
