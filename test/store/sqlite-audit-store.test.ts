import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../helpers/app.ts';
import { type AuditSubject, auditContract } from './audit-contract.ts';

const subject = (store: SqliteStore): AuditSubject => {
  const storage = store.storage();
  return { audit: storage.audit, close: () => storage.close() };
};

auditContract('SQLite in memory', async () => subject(new SqliteStore({ dataDir: ':memory:' })));

auditContract('SQLite file (WAL)', async () => {
  const dataDir = tempDir();
  const open = (): AuditSubject => ({ ...subject(new SqliteStore({ dataDir })), reopen: async () => open() });
  return open();
});
