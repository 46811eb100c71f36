import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type Db, type Document, MongoServerError } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { APP_ROLE, AUDITOR_ROLE, ensureRoles, roleDefinitions } from '../../src/store/mongo/mongo-init.ts';
import { COLLECTIONS } from '../../src/store/mongo/mongo-schema.ts';
import { tempDir } from '../helpers/app.ts';
import { testMongo, withDatabase } from '../helpers/mongo.ts';

const run = promisify(execFile);
const cli = new URL('../../src/cli/main.ts', import.meta.url).pathname;

/** The privileges a role's definition grants on one collection. */
const actionsOn = (role: Document, collection: string): string[] =>
  (role.privileges as { resource: { collection: string }; actions: string[] }[])
    .filter((p) => p.resource.collection === collection)
    .flatMap((p) => p.actions)
    .sort();

/** A database that records the commands it is sent; `createRole` of an existing role fails as MongoDB's does. */
function recordingDb(existing: string[] = []): { db: Db; sent: Document[] } {
  const sent: Document[] = [];
  const db = {
    databaseName: 'hearth',
    command: async (c: Document) => {
      sent.push(c);
      if (c.createRole && existing.includes(c.createRole)) throw new MongoServerError({ ok: 0, code: 51002, errmsg: `Role "${c.createRole}@hearth" already exists` });
      return { ok: 1 };
    },
  } as unknown as Db;
  return { db, sent };
}

describe('hearth mongo init: least privilege', () => {
  it('the application role may insert and read the audit trail but never update or delete it; the auditor only reads it', () => {
    const [app, auditor] = roleDefinitions('hearth');
    for (const c of [COLLECTIONS.auditLog, COLLECTIONS.checkpoints, COLLECTIONS.purges]) expect(actionsOn(app, c), c).toEqual(['find', 'insert']);
    expect(actionsOn(app, COLLECTIONS.resources)).toEqual(['find', 'insert', 'remove', 'update']);
    for (const c of [COLLECTIONS.auditLog, COLLECTIONS.checkpoints, COLLECTIONS.purges, COLLECTIONS.auditIndex]) expect(actionsOn(auditor, c), c).toEqual(['find']);
    expect(actionsOn(auditor, COLLECTIONS.resources)).toEqual([]);
    expect(actionsOn(auditor, COLLECTIONS.versions)).toEqual([]);
  });

  it('sends createRole for each role, and updateRole for one that exists', async () => {
    const { db, sent } = recordingDb([AUDITOR_ROLE]);
    expect(await ensureRoles(db)).toEqual([`created role ${APP_ROLE}`, `updated role ${AUDITOR_ROLE}`]);
    expect(sent.map((c) => Object.keys(c)[0] + ' ' + Object.values(c)[0])).toEqual([
      `createRole ${APP_ROLE}`,
      `createRole ${AUDITOR_ROLE}`,
      `updateRole ${AUDITOR_ROLE}`,
    ]);
    expect(sent[2].privileges).toEqual(sent[1].privileges);
    expect(sent[0]).toMatchObject({ roles: [], privileges: roleDefinitions('hearth')[0].privileges });
  });

  it('makes the collections and indexes on the wire server, says plainly that it has no role commands, and refuses without a URI', async () => {
    const uri = withDatabase((await testMongo()).uri);
    const env = { PATH: process.env.PATH ?? '', HEARTH_DATA_DIR: tempDir(), HEARTH_MONGODB_URI: uri };
    const out = await run(process.execPath, [cli, 'mongo', 'init'], { env });
    expect(out.stdout).toContain('collections and indexes of');
    expect(out.stdout).toMatch(/no role commands: roles were not made|created role hearthApp/);
    // idempotent
    expect((await run(process.execPath, [cli, 'mongo', 'init'], { env })).stdout).toContain('collections and indexes of');
    const without = await run(process.execPath, [cli, 'mongo', 'init'], { env: { ...env, HEARTH_MONGODB_URI: '' } }).catch((e) => e);
    expect(without.code).toBe(78);
    const noUri = await run(process.execPath, [cli, 'mongo', 'init'], { env: { PATH: env.PATH, HEARTH_DATA_DIR: env.HEARTH_DATA_DIR } }).catch((e) => e);
    expect(noUri.code).toBe(64);
    expect(noUri.stderr).toContain('mongo init needs HEARTH_MONGODB_URI');
  });
});
