import { sqliteStorage } from '../../src/store/sqlite/sqlite-storage.ts';
import { tempDir } from '../helpers/app.ts';
import { type AuditSubject, auditContract } from './audit-contract.ts';

const subject = (dataDir: string): AuditSubject => {
  const storage = sqliteStorage({ dataDir });
  return { audit: storage.audit, index: storage.auditIndex, close: () => storage.close() };
};

auditContract('SQLite in memory', async () => subject(':memory:'));

auditContract('SQLite file (WAL)', async () => {
  const dataDir = tempDir();
  const open = (): AuditSubject => ({ ...subject(dataDir), reopen: async () => open() });
  return open();
});
