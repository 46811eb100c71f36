import { MongoClient } from 'mongodb';
import { type Config, ConfigError, mongoDatabaseOf } from '../config/config.ts';
import { mongoInit } from '../store/mongo/mongo-init.ts';
import { withoutCredentials } from '../store/mongo/mongo-storage.ts';

/** `hearth mongo init` against the configured MongoDB (a standalone server is fine for this). */
export async function mongoInitCli(config: Config): Promise<string> {
  const uri = config.mongodb?.uri ?? '';
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000, appName: 'hearth-init' });
  try {
    await client.connect();
  } catch (err) {
    await client.close().catch(() => undefined);
    throw new ConfigError([{ name: 'HEARTH_MONGODB_URI', message: `cannot reach MongoDB: ${withoutCredentials((err as Error).message)}` }]);
  }
  try {
    return await mongoInit(client.db(mongoDatabaseOf(uri) || 'hearth'));
  } finally {
    await client.close();
  }
}
