import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../helpers/app.ts';
import { storeContract } from './contract.ts';

storeContract('SQLite in memory', async (clock) => ({ store: new SqliteStore({ dataDir: ':memory:', clock }) }));

storeContract('SQLite file (WAL)', async (clock) => {
  const dataDir = tempDir();
  return { store: new SqliteStore({ dataDir, clock }), reopen: async () => new SqliteStore({ dataDir, clock }) };
});
