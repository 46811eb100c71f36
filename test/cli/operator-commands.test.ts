import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir, testApp } from '../helpers/app.ts';

const cli = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const run = (dataDir: string, args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH ?? '', HEARTH_DATA_DIR: dataDir }, encoding: 'utf8' });

describe('operator commands reject bad input clearly', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: '' } });
    await t.app.close();
  });

  it.each([
    [['audit', 'report', '--to', '2026-02-01'], 64, '--from must be a FHIR date'],
    [['audit', 'report', '--from', '2026-02-01', '--to', '2026-01-01'], 64, '--to must come after --from'],
    [['audit', 'report', '--from', '2026-01-01', '--to', '2026-02-01', '--format', 'pdf'], 64, '--format must be json, md or html'],
    [['audit', 'report', '--from', '2026-01-01', '--to', '2026-02-01', '--top', '0'], 64, '--top must be a whole number'],
    [['audit', 'purge', '--before', 'last-year'], 64, '--before must be a date'],
    [['audit', 'verify', '--public-key', '/nonexistent.pem'], 66, 'no checkpoint public key at /nonexistent.pem'],
    [['audit', 'verify', '--witness', '/nonexistent/witness.log'], 66, 'no witness file at /nonexistent/witness.log'],
    [['audit', 'verify', '--witness'], 64, 'Option \'--witness <value>\' argument missing'],
    [['audit', 'shred'], 64, 'unknown audit command "shred"'],
    [['keys', 'retire'], 64, 'usage: hearth keys retire <version>'],
    [['keys', 'retire', 'one'], 64, 'usage: hearth keys retire <version>'],
    [['keys', 'retire', '9'], 64, 'key version 9 is not in the keyring'],
    [['keys', 'retire', '1'], 64, 'key version 1 is current: rotate first'],
    [['keys', 'burn'], 64, 'unknown keys command "burn"'],
  ])('%j → exit %i: %s', (args, code, message) => {
    const out = run(dataDir, args);
    expect(out.stderr).toContain(message);
    expect(out.status).toBe(code);
  });

  it('reports a period in markdown, JSON and HTML', () => {
    const md = run(dataDir, ['audit', 'report', '--from', '2026-01-01', '--to', '2026-02-01']);
    expect(md.status).toBe(0);
    expect(md.stdout).toContain('- events: **2**');
    expect(md.stdout).toContain('unauthenticated 1');
    const j = JSON.parse(run(dataDir, ['audit', 'report', '--from', '2026-01-01', '--to', '2026-02-01', '--format', 'json']).stdout);
    expect(j.totals.events).toBe(2);
    const html = run(dataDir, ['audit', 'report', '--from', '2026-01-01', '--to', '2026-02-01', '--format', 'html']).stdout;
    expect(html).toContain('<svg role="img" aria-label="By outcome"');
  });

  it('says so when there is no database', () => {
    const out = run(tempDir(), ['audit', 'verify']);
    expect(out.status).toBe(66);
    expect(out.stderr).toMatch(/no (Hearth database|checkpoint public key)/);
  });
});
