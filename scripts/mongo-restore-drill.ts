// The restore drill of an encrypted MongoDB deployment (docs/scaling.md): export every collection
// of the configured database (Extended JSON: ciphertext and blind indexes, no key) and the keyring
// apart, restore both into an empty database, then `audit verify` the restored chain and read every
// version back with the restored keyring, comparing it with the source.
//
//   HEARTH_MONGODB_URI=… node scripts/mongo-restore-drill.ts --to <empty database> [--out <dir>]
//
// Exit 0 when the restored deployment verifies and reads back whole, 1 when it does not, 64 on
// bad arguments.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BSON, type Document, MongoClient } from 'mongodb';
import { verifyChain } from '../src/audit/chain.ts';
import { loadPublicKey, publicKeyPath } from '../src/audit/signing-key.ts';
import { configOrExit, mongoDatabaseOf } from '../src/config/config.ts';
import { openResource } from '../src/crypto/envelope.ts';
import { LocalKeyring } from '../src/crypto/keyring.ts';
import { COLLECTIONS } from '../src/store/mongo/mongo-schema.ts';
import { ensureSchema, mongoStorage } from '../src/store/mongo/mongo-storage.ts';

type Json = Record<string, unknown>;

function usage(message: string): never {
  process.stderr.write(`mongo-restore-drill: ${message}\nusage: HEARTH_MONGODB_URI=… node scripts/mongo-restore-drill.ts --to <empty database> [--out <dir>]\n`);
  process.exit(64);
}

let values: { to?: string; out?: string };
try {
  ({ values } = parseArgs({ options: { to: { type: 'string' }, out: { type: 'string' } }, strict: true }));
} catch (err) {
  usage((err as Error).message);
}
const config = configOrExit(process.env);
if (!config.mongodb) usage('HEARTH_MONGODB_URI names the database to drill');
const to = values.to;
if (!to || !/^[A-Za-z0-9_-]{1,63}$/.test(to)) usage('--to must name the database to restore into (letters, digits, _ and -)');
const from = mongoDatabaseOf(config.mongodb.uri) || 'hearth';
if (to === from) usage('--to must not be the source database');
const out = values.out ?? mkdtempSync(join(tmpdir(), 'hearth-drill-'));
mkdirSync(out, { recursive: true, mode: 0o700 });

const client = new MongoClient(config.mongodb.uri, { serverSelectionTimeoutMS: 10_000 });
await client.connect();
const lines: string[] = [];
let ok = true;
try {
  const source = client.db(from);
  const target = client.db(to);
  // 1. Export: what a backup holds, collection by collection.
  let exported = 0;
  for (const name of Object.values(COLLECTIONS)) {
    const docs = await source.collection(name).find().sort({ _id: 1 }).toArray();
    writeFileSync(join(out, `${name}.jsonl`), docs.map((d) => BSON.EJSON.stringify(d, { relaxed: false })).join('\n'), { mode: 0o600 });
    exported += docs.length;
  }
  // The keyring goes apart from the data backup.
  const keyringCopy = join(out, 'keyring.json');
  if (config.keyring.kind === 'file') copyFileSync(config.keyring.path, keyringCopy);
  else writeFileSync(keyringCopy, config.keyring.json, { mode: 0o600 });
  lines.push(`exported ${exported} documents of ${from} and the keyring to ${out}`);

  // 2. Restore into an empty database.
  for (const name of Object.values(COLLECTIONS)) {
    if ((await target.collection(name).countDocuments({}, { limit: 1 })) > 0) throw new Error(`${to}.${name} is not empty: restore into an empty database`);
  }
  await ensureSchema(target);
  for (const name of Object.values(COLLECTIONS)) {
    const text = readFileSync(join(out, `${name}.jsonl`), 'utf8');
    const docs = text === '' ? [] : text.split('\n').map((l) => BSON.EJSON.parse(l, { relaxed: false }) as Document);
    if (docs.length) await target.collection(name).insertMany(docs, { ordered: true });
  }
  lines.push(`restored into ${to}`);

  // 3. The restored chain verifies against the signing key's public key.
  // (The same URI, so the same credentials and authSource; the database by name.)
  const storage = await mongoStorage({ uri: config.mongodb.uri, database: to, requireReplicaSet: config.mongodb.requireReplicaSet });
  try {
    const verified = await verifyChain(storage.audit, loadPublicKey(publicKeyPath(config.audit.signingKey)), undefined, storage.auditIndex);
    ok &&= verified.ok;
    lines.push(verified.ok ? `audit verify: intact, ${verified.events} events, ${verified.checkpoints} signed checkpoints` : `audit verify: BROKEN at ${verified.problem}`);

    // 4. Every version reads back, opened with the restored keyring, equal to the source's.
    const restoredKeys = LocalKeyring.fromJson(readFileSync(keyringCopy, 'utf8'));
    const originalKeys = config.keyring.kind === 'file' ? LocalKeyring.open(config.keyring.path, false) : LocalKeyring.fromJson(config.keyring.json);
    let read = 0;
    let differ = 0;
    const versions = source.collection<{ type: string; id: string; v: number; body: string | null }>(COLLECTIONS.versions);
    for await (const v of versions.find({ body: { $ne: null } })) {
      const back = await storage.resources.vread(v.type, v.id, v.v);
      const restored = back?.resource && openResource(restoredKeys, v.type, v.id, v.v, back.resource as Json);
      const original = openResource(originalKeys, v.type, v.id, v.v, JSON.parse(v.body ?? '{}') as Json);
      if (JSON.stringify(restored) !== JSON.stringify(original)) differ++;
      read++;
    }
    ok &&= differ === 0;
    lines.push(differ === 0 ? `read back: ${read} versions, each equal to the source` : `read back: ${differ} of ${read} versions DIFFER from the source`);
  } finally {
    await storage.close();
  }
} catch (err) {
  ok = false;
  lines.push(`drill failed: ${(err as Error).message}`);
} finally {
  await client.close();
}
process.stdout.write(`${lines.join('\n')}\n${ok ? 'restore drill passed' : 'restore drill FAILED'}\n`);
process.exit(ok ? 0 : 1);
