import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { sqliteStorage } from '../../src/store/sqlite/sqlite-storage.ts';
import { json, tempDir } from '../helpers/app.ts';

const cli = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const run = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });

describe('hearth dev-token', () => {
  it('issues a token that a server trusting the dev issuer accepts, with the scopes asked for', async () => {
    const dataDir = tempDir();
    const out = run(['dev-token', '--scope', 'patient/*.rs', '--patient', 'p1'], { HEARTH_DATA_DIR: dataDir });
    expect(out.status).toBe(0);
    expect(out.stderr).toContain('HEARTH_AUTH_ISSUER=https://dev-issuer.hearth.invalid');
    const token = out.stdout.trim();
    // A server on the real clock (the token was issued now), trusting the dev issuer.
    const config = loadConfig({
      HEARTH_LOG_LEVEL: 'silent',
      HEARTH_DATA_DIR: tempDir(),
      HEARTH_AUTH_ISSUER: 'https://dev-issuer.hearth.invalid',
      HEARTH_AUTH_JWKS: join(dataDir, 'dev-issuer', 'jwks.json'),
    });
    const t = { app: await buildApp(config, { storage: sqliteStorage({ dataDir: ':memory:' }) }) };
    const read = await t.app.inject({ method: 'GET', url: '/fhir/Observation', headers: { authorization: `Bearer ${token}` } });
    expect(read.statusCode).toBe(200);
    expect(json(read).total).toBe(0);
    const write = await t.app.inject({ method: 'POST', url: '/fhir/Patient', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' }, payload: '{"resourceType":"Patient"}' });
    expect(write.statusCode).toBe(403);
  });

  it('with --patient alone, issues a patient-restricted token (patient/*.cruds launch/patient), not system/*', () => {
    const out = run(['dev-token', '--patient', 'p1'], { HEARTH_DATA_DIR: tempDir() });
    expect(out.status).toBe(0);
    const claims = JSON.parse(Buffer.from(out.stdout.trim().split('.')[1], 'base64url').toString());
    expect(claims).toMatchObject({ scope: 'patient/*.cruds launch/patient', patient: 'p1' });
    const plain = run(['dev-token'], { HEARTH_DATA_DIR: tempDir() });
    expect(JSON.parse(Buffer.from(plain.stdout.trim().split('.')[1], 'base64url').toString()).scope).toBe('system/*.cruds');
  });

  it('issues system/ or user/ scopes with --patient only when told explicitly', () => {
    const out = run(['dev-token', '--patient', 'p1', '--scope', 'patient/*.rs user/Observation.rs', '--allow-wider-scopes'], { HEARTH_DATA_DIR: tempDir() });
    expect(out.status).toBe(0);
    const claims = JSON.parse(Buffer.from(out.stdout.trim().split('.')[1], 'base64url').toString());
    expect(claims.scope).toBe('patient/*.rs user/Observation.rs');
  });

  it.each([
    [['dev-token', '--patient', 'p1', '--scope', 'system/*.cruds'], '--patient with system/*.cruds: those scopes reach every patient'],
    [['dev-token', '--patient', 'p1', '--scope', 'patient/*.rs user/Patient.r'], '--patient with user/Patient.r: those scopes reach every patient'],
    [['dev-token', '--allow-wider-scopes'], '--allow-wider-scopes goes with --patient'],
    [['dev-token', '--scope', 'user/Patient.rx'], 'not a SMART scope: user/Patient.rx'],
    [['dev-token', '--lifetime', '99999'], '--lifetime must be a whole number of seconds from 60 to 3600'],
    [['dev-token', '--patient', 'a b'], '--patient must be a FHIR id'],
    [['dev-token', '--bogus'], 'Unknown option \'--bogus\''],
    [['launch-rockets'], 'unknown command "launch-rockets"'],
  ])('%j → exit 64: %s', (args, message) => {
    const out = run(args, { HEARTH_DATA_DIR: tempDir() });
    expect(out.status).toBe(64);
    expect(out.stderr).toContain(message);
    expect(out.stdout).toBe('');
  });

  it('reports bad configuration like the server does', () => {
    const out = run(['dev-token'], { HEARTH_PORT: 'x' });
    expect(out.status).toBe(78);
    expect(out.stderr).toContain('HEARTH_PORT');
  });
});
