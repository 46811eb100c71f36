import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { create, FHIR_JSON, testApp } from '../helpers/app.ts';
import { canaryPatient } from '../helpers/canaries.ts';

const run = promisify(execFile);
const drill = new URL('../../scripts/mongo-restore-drill.ts', import.meta.url).pathname;

describe('MongoDB: the restore drill of an encrypted deployment', () => {
  it('exports ciphertext and the keyring apart, restores them into an empty database, and the restored chain verifies and reads back whole', async () => {
    const t = await testApp({}, { mongodb: true });
    const p = await create(t.app, canaryPatient);
    await t.app.inject({ method: 'PUT', url: `/fhir/Patient/${p.id}`, headers: { 'content-type': FHIR_JSON }, payload: JSON.stringify({ ...p, gender: 'other' }) });
    await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${p.id}` }, valueString: 'Zqvaluestring' });
    await t.auditIndexed();
    const env = { PATH: process.env.PATH ?? '', HEARTH_DATA_DIR: t.config.dataDir, HEARTH_MONGODB_URI: (t.storage as unknown as { uri: string }).uri };
    const out = await run(process.execPath, [drill, '--to', `drill_${Date.now()}`, '--out', join(t.config.dataDir, 'backup')], { env });
    expect(out.stdout).toMatch(/^exported \d+ documents of hearth_test_\w+ and the keyring to /);
    expect(out.stdout).toMatch(/audit verify: intact, \d+ events, \d+ signed checkpoints/);
    expect(out.stdout).toContain('read back: 3 versions, each equal to the source');
    expect(out.stdout.trim().split('\n').at(-1)).toBe('restore drill passed');
    // Not into the source, nor a database that holds data.
    const same = await run(process.execPath, [drill, '--to', new URL(env.HEARTH_MONGODB_URI).pathname.slice(1)], { env }).catch((e) => e);
    expect(same.code).toBe(64);
    const full = await run(process.execPath, [drill, '--to', new URL(env.HEARTH_MONGODB_URI).pathname.slice(1) + 'x', '--out', join(t.config.dataDir, 'backup2')], { env });
    expect(full.stdout).toContain('restore drill passed');
    const again = await run(process.execPath, [drill, '--to', new URL(env.HEARTH_MONGODB_URI).pathname.slice(1) + 'x', '--out', join(t.config.dataDir, 'backup2')], { env }).catch((e) => e);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/drill failed: \w+\.\w+ is not empty: restore into an empty database/);
  });
});
