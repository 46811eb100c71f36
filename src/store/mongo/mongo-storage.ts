import { type Db, MongoClient, MongoServerError } from 'mongodb';
import type { Storage } from '../port.ts';
import { MongoAuditIndex, MongoAuditLog } from './mongo-audit-log.ts';
import { COLLECTIONS, INDEXES } from './mongo-schema.ts';
import { MongoStore } from './mongo-store.ts';

export interface MongoStorageOptions {
  /** mongodb:// or mongodb+srv:// connection string (it may name the database) */
  readonly uri: string;
  /** the database, when the URI names none: `hearth` */
  readonly database?: string;
  /** refuse a deployment that is not a replica set (or sharded cluster); true unless development */
  readonly requireReplicaSet: boolean;
  readonly clock?: () => Date;
  /** how long to look for a server before giving up, ms */
  readonly serverSelectionTimeoutMS?: number;
}

/** A MongoDB deployment that cannot serve Hearth as configured: stops the start with this message. */
export class MongoSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MongoSetupError';
  }
}

/** A driver's message without the credentials a connection string may carry. */
export function withoutCredentials(message: string): string {
  return message.replace(/\/\/[^@/\s]*@/g, '//***@');
}

/** What the server says it is: a replica set member (its set's name), a mongos, or a standalone. */
export async function topologyOf(db: Db): Promise<{ replicaSet?: string; sharded: boolean }> {
  const hello = await db.command({ hello: 1 });
  return { replicaSet: typeof hello.setName === 'string' ? hello.setName : undefined, sharded: hello.msg === 'isdbgrid' };
}

/**
 * Creates the collections and every index the adapter's queries need; safe to run again (an
 * index that exists with the same keys and options is left as it is).
 */
export async function ensureSchema(db: Db): Promise<void> {
  for (const name of Object.values(COLLECTIONS)) {
    try {
      await db.createCollection(name);
    } catch (err) {
      // 48: it exists; 59: a server without the `create` command makes it on first use instead.
      if (!(err instanceof MongoServerError) || (err.code !== 48 && err.code !== 59)) throw err;
    }
    for (const ix of INDEXES[name]) await db.collection(name).createIndex(ix.key, ix.options);
  }
}

/**
 * The storage on MongoDB: resources, their history, the audit log and its searchable copy in
 * one database. Connects, checks the deployment, makes the schema; the caller closes it.
 */
export async function mongoStorage(options: MongoStorageOptions): Promise<Storage> {
  const client = new MongoClient(options.uri, {
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 10_000,
    writeConcern: { w: 'majority', journal: true },
    readConcern: { level: 'majority' },
    readPreference: 'primary',
    retryWrites: true,
    appName: 'hearth',
  });
  try {
    await client.connect();
  } catch (err) {
    await client.close().catch(() => undefined);
    // The driver's message names the host and the reason; never the password of the URI.
    throw new MongoSetupError(`cannot reach MongoDB at HEARTH_MONGODB_URI: ${withoutCredentials((err as Error).message)}`);
  }
  try {
    const db = client.db(options.database);
    const topology = await topologyOf(db);
    const transactions = topology.replicaSet !== undefined || topology.sharded;
    if (!transactions && options.requireReplicaSet) {
      throw new MongoSetupError(
        'HEARTH_MONGODB_URI names a standalone MongoDB server: Hearth needs a replica set (or a sharded cluster) for ' +
        'multi-document transactions and majority-acknowledged writes. Use a replica set (even of one member), or set ' +
        'HEARTH_MONGODB_REQUIRE_REPLICA_SET=false for development only',
      );
    }
    await ensureSchema(db);
    const tx = { client, enabled: transactions };
    const audit = new MongoAuditLog(tx, db);
    const store = new MongoStore(tx, db, options.clock ?? (() => new Date()), (id) => audit.body(id));
    return {
      resources: store,
      audit,
      auditIndex: new MongoAuditIndex(db),
      keys: store,
      capabilities: { adapter: 'mongodb' },
      hasResources: () => store.hasResources(),
      async close() {
        await client.close();
      },
    };
  } catch (err) {
    await client.close().catch(() => undefined);
    throw err;
  }
}
