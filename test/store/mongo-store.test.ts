import { mongoTestStorage } from '../helpers/mongo.ts';
import { type AuditSubject, auditContract } from './audit-contract.ts';
import { storeContract } from './contract.ts';

// The same contracts as the embedded store, on the MongoDB adapter over a real wire-protocol
// server (see test/helpers/mongo.ts for which).
storeContract('MongoDB', async (clock) => {
  const storage = await mongoTestStorage(clock);
  const database = new URL(storage.uri).pathname.slice(1);
  return {
    store: Object.assign(storage.resources, { close: () => storage.close() }),
    reopen: async () => {
      const again = await mongoTestStorage(clock, database);
      return Object.assign(again.resources, { close: () => again.close() });
    },
  };
});

auditContract('MongoDB', async () => {
  const storage = await mongoTestStorage();
  const database = new URL(storage.uri).pathname.slice(1);
  const open = (s: typeof storage): AuditSubject => ({
    audit: s.audit,
    index: s.auditIndex,
    close: () => s.close(),
    reopen: async () => open(await mongoTestStorage(undefined, database)),
  });
  return open(storage);
});
