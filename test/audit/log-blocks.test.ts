import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildAuditEvent } from '../../src/audit/audit-event.ts';
import { auditAppendOf } from '../../src/audit/audit-sink.ts';
import type { AuditAppend } from '../../src/audit/audit-store.ts';
import { canonicalize } from '../../src/audit/canonical-json.ts';
import { packBodies } from '../../src/audit/log-codec.ts';
import { LocalKeyring } from '../../src/crypto/keyring.ts';
import { SqliteAuditLog } from '../../src/store/sqlite/sqlite-audit-log.ts';
import { openAuditLogDb } from '../../src/store/sqlite/sqlite-storage.ts';
import { tempDir } from '../helpers/app.ts';

const keys = LocalKeyring.fromJson(JSON.stringify({ version: 1, current: 1, keks: { 1: Buffer.alloc(32, 7).toString('base64') }, retired: [], index: Buffer.alloc(32, 9).toString('base64') }));
const appendOf = auditAppendOf(keys);
const event = (n: number): AuditAppend =>
  appendOf(buildAuditEvent({
    requestId: `r-${n}`,
    recorded: new Date(Date.UTC(2026, 11, 1, 0, 0, n)),
    interaction: 'create',
    resourceType: 'Observation',
    status: 201,
    entities: [{ reference: `Observation/o-${n}/_history/1`, role: 'after' }],
    patients: ['Patient/p-1'],
    server: { baseUrl: 'http://127.0.0.1:8080/fhir', name: 'Hearth' },
  }));

describe('the audit log\'s blocks of compressed bodies', () => {
  it('stores bodies compressed ahead as they are, compresses the rest, and every stored body is what its link hashes', async () => {
    const db = openAuditLogDb(join(tempDir(), 'audit.db'));
    const log = new SqliteAuditLog(db);
    const packed = packBodies(Array.from({ length: 70 }, (_, i) => event(100 + i)));
    // packed ahead: blocks of 64 and 6, each event's canonical JSON kept with it
    expect(packed.map((e) => e.packed?.block.count)).toEqual([...Array(64).fill(64), ...Array(6).fill(6)]);
    for (const e of packed) expect(e.canonical).toBe(JSON.stringify(canonicalize(e.resource)));
    // A batch: two events made now, the 70, one more; then batches holding only part of a packed
    // block, from its middle and from its start (compressed again at append, their ranges their own).
    const partial = packBodies(Array.from({ length: 20 }, (_, i) => event(200 + i))).slice(5, 15);
    const head = packBodies(Array.from({ length: 20 }, (_, i) => event(300 + i))).slice(0, 10);
    await log.appendAudit([event(1), event(2), ...packed, event(3)]);
    await log.appendAudit(partial);
    await log.appendAudit(head);

    const blocks = db.prepare('SELECT first_seq, body FROM audit_blocks ORDER BY first_seq').all() as { first_seq: number; body: Uint8Array }[];
    expect(blocks.map((b) => b.first_seq)).toEqual([1, 3, 67, 73, 74, 84]);
    expect(Buffer.from(blocks[1].body)).toEqual(Buffer.from(packed[0].packed!.block.body));
    expect(Buffer.from(blocks[2].body)).toEqual(Buffer.from(packed[64].packed!.block.body));
    expect(Buffer.from(blocks[5].body)).not.toEqual(Buffer.from(head[0].packed!.block.body));
    const links = db.prepare('SELECT seq, block, at, len FROM audit_log ORDER BY seq').all() as { seq: number; block: number; at: number; len: number }[];
    const expectedBlocks = [1, 1, ...Array(64).fill(3), ...Array(6).fill(67), 73, ...Array(10).fill(74), ...Array(10).fill(84)];
    expect(links.map((l) => l.block)).toEqual(expectedBlocks);
    const ranges = links.filter((l) => l.block === 3).map((l) => [l.at, l.len]);
    expect(ranges).toEqual(packed.slice(0, 64).map((e) => [e.packed!.at, e.packed!.len]));

    // Each stored body, read back through the log, is the event's canonical JSON, and each link's
    // hash is SHA-256 over the hash before it, its sequence number and that body.
    const sent = [event(1), event(2), ...packed, event(3), ...partial, ...head];
    let prev = '0'.repeat(64);
    const chain = [...log.chain()];
    expect(chain).toHaveLength(sent.length);
    chain.forEach((l, i) => {
      expect(l.body, `seq ${l.seq}`).toBe(sent[i].canonical);
      const hash = createHash('sha256').update(`${prev}\n${l.seq}\n${l.body}`).digest('hex');
      expect(l.hash).toBe(hash);
      prev = hash;
    });
    db.close();
  });
});
