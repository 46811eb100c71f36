import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Config, ConfigError, mongoDatabaseOf } from '../config/config.ts';
import type { Storage } from './port.ts';
import { AUDIT_LOG_FILE, RESOURCE_FILE, sqliteStorage } from './sqlite/sqlite-storage.ts';

// Opening the configured storage, apart from the rest of the composition (compose.ts): what an
// operator command's threads need (each stretch of `hearth audit verify` opens it), without
// loading the FHIR definitions, the HTTP layer and the authorization server (~1 s an import).
// The MongoDB driver is loaded only for a configuration that names MongoDB (~0.2 s).

/**
 * The storage the configuration names: MongoDB when HEARTH_MONGODB_URI is set, otherwise the
 * embedded SQLite store under the data directory (with its checkpointer thread when `serving`).
 * A MongoDB that cannot serve (unreachable, a standalone server where a replica set is required)
 * stops the start like a configuration mistake.
 */
export async function openStorage(config: Config, clock?: () => Date, serving = false): Promise<Storage> {
  if (!config.mongodb) return sqliteStorage({ dataDir: config.dataDir, clock, checkpointThread: serving });
  const { MongoSetupError, mongoStorage } = await import('./mongo/mongo-storage.ts');
  try {
    return await mongoStorage({ uri: config.mongodb.uri, database: mongoDatabaseOf(config.mongodb.uri) || 'hearth', requireReplicaSet: config.mongodb.requireReplicaSet, clock });
  } catch (err) {
    if (err instanceof MongoSetupError) throw new ConfigError([{ name: 'HEARTH_MONGODB_URI', message: err.message }]);
    throw err;
  }
}

/** The configured storage for an operator command, or undefined when no database exists yet. */
export async function existingStorage(config: Config): Promise<Storage | undefined> {
  if (config.mongodb) return openStorage(config);
  return [RESOURCE_FILE, AUDIT_LOG_FILE].some((f) => existsSync(join(config.dataDir, f))) ? openStorage(config) : undefined;
}
