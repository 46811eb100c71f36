import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/app.ts';
import { startServer as start, stopServer as stop } from '../helpers/server.ts';

const entry = new URL('../../src/server.ts', import.meta.url).pathname;

describe('the server process', () => {
  it('starts on loopback, keeps data across a graceful restart, and never logs PHI', async () => {
    const dataDir = tempDir();
    const first = await start({ HEARTH_DATA_DIR: dataDir });
    expect(first.output()).toContain('listening on 127.0.0.1');
    expect(first.output()).toContain('created the keyring (the keys that encrypt the data at rest): back it up now');
    expect(first.output()).toContain('created the audit signing key: back it up apart from the data');
    const auth = { authorization: `Bearer ${first.token}` };
    const canary = 'Zzcanaryfamily';
    const res = await fetch(`${first.base}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', ...auth },
      body: JSON.stringify({ resourceType: 'Patient', name: [{ family: canary }], birthDate: '1961-07-04' }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    expect((await fetch(`${first.base}/Patient?family=${canary}`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${first.base}/Patient?birthdate=1961-07-04x`, { headers: auth })).status).toBe(400);
    const forged = { authorization: 'Bearer secret-token-canary' };
    expect((await fetch(`${first.base}/Patient?family=${canary}`, { headers: forged })).status).toBe(401);
    expect(await stop(first)).toBe(0);
    const log = first.output();
    expect(log).toContain('"statusCode":201');
    expect(log).not.toContain(canary);
    expect(log).not.toContain('1961-07-04');
    expect(log).not.toContain('secret-token-canary');
    expect(log).not.toContain(first.token);

    const second = await start({ HEARTH_DATA_DIR: dataDir });
    expect(second.output()).not.toContain('created the');
    const read = await fetch(`${second.base}/Patient/${id}`, { headers: { authorization: `Bearer ${second.token}` } });
    expect(read.status).toBe(200);
    expect(((await read.json()) as any).name[0].family).toBe(canary);
    // Its threads carry names an operator can tell apart (top -H, ps -L): the audit log's
    // writer, the audit index's follower, hearth.db's checkpointer.
    const threads = readdirSync(`/proc/${second.child.pid}/task`).map((t) => readFileSync(`/proc/${second.child.pid}/task/${t}/comm`, 'utf8').trim());
    expect(threads).toEqual(expect.arrayContaining(['MainThread', 'hearth-audit', 'hearth-index', 'hearth-checkpt']));
    expect(await stop(second)).toBe(0);
  });

  it('a second server on a busy port exits with one clear line, no stack trace', async () => {
    const first = await start({ HEARTH_DATA_DIR: tempDir() });
    const port = new URL(first.base).port;
    const child = spawn(process.execPath, [entry], {
      env: { PATH: process.env.PATH ?? '', HEARTH_PORT: port, HEARTH_DATA_DIR: tempDir() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
    });
    const [code] = await once(child, 'exit');
    expect(await stop(first)).toBe(0);
    expect(code).toBe(69);
    expect(err).toBe(
      `hearth: cannot listen on 127.0.0.1:${port}: the port is in use (another Hearth, or another program, is listening there); set HEARTH_PORT or HEARTH_HOST\n`,
    );
  });

  it('refuses to start on bad configuration, naming each setting', async () => {
    const child = spawn(process.execPath, [entry], {
      env: { PATH: process.env.PATH ?? '', HEARTH_PORT: 'eighty', HEARTH_HOST: 'everywhere' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
    });
    const [code] = await once(child, 'exit');
    expect(code).toBe(78);
    expect(err).toContain('HEARTH_PORT: must be a whole number from 0 to 65535, got "eighty"');
    expect(err).toContain('HEARTH_HOST: must be an IP address or "localhost", got "everywhere"');
    expect(err).not.toContain('    at ');
  });
});
