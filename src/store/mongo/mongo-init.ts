// `hearth mongo init`: the collections, their indexes and two database roles, for a DBA to run
// once with an administrator's credentials (the server itself makes the collections and indexes
// at start too, idempotently, but never roles).
import { type Db, type Document, MongoServerError } from 'mongodb';
import { COLLECTIONS } from './mongo-schema.ts';
import { ensureSchema } from './mongo-storage.ts';

export const APP_ROLE = 'hearthApp';
export const AUDITOR_ROLE = 'hearthAuditor';

const on = (db: string, collection: string, actions: string[]) => ({ resource: { db, collection }, actions });

/**
 * The two roles, least privilege: the application reads and writes resources, their history and
 * its own bookkeeping, but may only insert and read the audit log and its signed heads and purge
 * records — never update or delete them; the auditor only reads the audit trail. Retention purges
 * (`hearth audit purge`) need a user allowed to remove from audit_log: an operator's, not these.
 */
export function roleDefinitions(db: string): Document[] {
  const readWrite = ['find', 'insert', 'update', 'remove'];
  const appendOnly = ['find', 'insert'];
  return [
    {
      role: APP_ROLE,
      privileges: [
        on(db, COLLECTIONS.resources, readWrite),
        on(db, COLLECTIONS.versions, readWrite),
        on(db, COLLECTIONS.claims, ['find', 'insert']),
        on(db, COLLECTIONS.auditIndex, ['find', 'insert', 'remove']),
        on(db, COLLECTIONS.marks, ['find', 'insert', 'update']),
        on(db, COLLECTIONS.auditLog, appendOnly),
        on(db, COLLECTIONS.checkpoints, appendOnly),
        on(db, COLLECTIONS.purges, appendOnly),
        // the indexes the server makes (idempotently) at start
        { resource: { db, collection: '' }, actions: ['createIndex', 'createCollection', 'listCollections', 'listIndexes'] },
      ],
      roles: [],
    },
    {
      role: AUDITOR_ROLE,
      privileges: [
        on(db, COLLECTIONS.auditLog, ['find']),
        on(db, COLLECTIONS.checkpoints, ['find']),
        on(db, COLLECTIONS.purges, ['find']),
        on(db, COLLECTIONS.auditIndex, ['find']),
        on(db, COLLECTIONS.marks, ['find']),
      ],
      roles: [],
    },
  ];
}

/** The commands that make (or, when they exist, bring up to date) the roles. */
export async function ensureRoles(db: Db): Promise<string[]> {
  const done: string[] = [];
  for (const def of roleDefinitions(db.databaseName)) {
    try {
      await db.command({ createRole: def.role, privileges: def.privileges, roles: def.roles });
      done.push(`created role ${def.role}`);
    } catch (err) {
      // 51002: the role exists — its privileges are set to these.
      if (!(err instanceof MongoServerError) || err.code !== 51002) throw err;
      await db.command({ updateRole: def.role, privileges: def.privileges, roles: def.roles });
      done.push(`updated role ${def.role}`);
    }
  }
  return done;
}

/** Collections and indexes, then the roles where the server has role commands. */
export async function mongoInit(db: Db): Promise<string> {
  await ensureSchema(db);
  const lines = [`collections and indexes of ${db.databaseName} are in place`];
  try {
    lines.push(...(await ensureRoles(db)));
  } catch (err) {
    // 59: a server without role commands (the wire-protocol test server, some hosted offerings).
    if (!(err instanceof MongoServerError) || err.code !== 59) throw err;
    lines.push('this server has no role commands: roles were not made; grant the privileges of docs/mongodb.md another way');
  }
  lines.push(`grant ${APP_ROLE} to the user Hearth connects as, and ${AUDITOR_ROLE} to auditors' users`);
  return `${lines.join('\n')}\n`;
}
