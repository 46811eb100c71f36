import { generateKeyPairSync } from 'node:crypto';
import type { AuditEvent } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditAppend, AuditIndex, AuditStore, CheckpointSigner } from '../../src/audit/audit-store.ts';
import { GENESIS, verifyChain } from '../../src/audit/chain.ts';
import { checkpointSigner } from '../../src/audit/signing-key.ts';

export interface AuditSubject {
  readonly audit: AuditStore;
  /** the searchable copy the indexer keeps */
  readonly index: AuditIndex;
  /** the same trail opened anew, for adapters whose data outlives the process */
  readonly reopen?: () => Promise<AuditSubject>;
  close(): Promise<void>;
}

const event = (n: number, recorded = `2026-01-01T00:00:0${n - 1}.000Z`): AuditEvent => ({
  resourceType: 'AuditEvent',
  id: `kat-${n}`,
  recorded,
  type: { code: 'rest' },
  action: 'R',
  agent: [{ requestor: true, name: 'kat' }],
  source: { observer: { display: 'Hearth' } },
});
const append = (e: AuditEvent): AuditAppend => ({ resource: e });

/**
 * The AuditStore port's contract: append-only, one hash chain from genesis, atomic batches,
 * signed checkpoints, time-bounded reads, and a retention purge that is itself in the chain.
 * Every adapter runs it.
 */
export function auditContract(name: string, open: () => Promise<AuditSubject>): void {
  describe(`AuditStore contract: ${name}`, () => {
    const opened: AuditSubject[] = [];
    const fresh = async () => {
      const s = await open();
      opened.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    it('chains events from genesis: SHA-256 over the predecessor hash, the sequence number and the canonical JSON (known answer)', async () => {
      const { audit } = await fresh();
      await audit.appendAudit([append(event(1)), append(event(2))]);
      const links = (await Array.fromAsync(audit.chain()));
      // Computed independently: sha256("000…0\n1\n" + canonical JSON of kat-1), then chained.
      expect(links.map(({ seq, id, prevHash, hash }) => ({ seq, id, prevHash, hash }))).toEqual([
        { seq: 1, id: 'kat-1', prevHash: GENESIS, hash: '1d5f6f6b1168d000ed155d0007e94684e1e3ac5b61f5565a5db918e328b1f6d6' },
        {
          seq: 2,
          id: 'kat-2',
          prevHash: '1d5f6f6b1168d000ed155d0007e94684e1e3ac5b61f5565a5db918e328b1f6d6',
          hash: 'dc97427f14c083e43a9c2f3982eb70b1a8637a132b9c38e602c2dc3ad82307e6',
        },
      ]);
      expect(JSON.parse(links[0].body!)).toEqual(event(1));
      expect((await audit.head())).toEqual({ seq: 2, hash: 'dc97427f14c083e43a9c2f3982eb70b1a8637a132b9c38e602c2dc3ad82307e6' });
    });

    it('returns the new head of each append, and hands the indexer what follows a sequence number', async () => {
      const { audit } = await fresh();
      expect((await audit.head())).toEqual({ seq: 0, hash: GENESIS });
      expect(await audit.appendAudit([append(event(1)), { ...append({ ...event(2), id: 'r.attempt' }), searchable: false }])).toMatchObject({ seq: 2 });
      expect(await audit.appendAudit([append(event(3))])).toMatchObject({ seq: 3 });
      expect((await audit.entriesAfter(1, 10)).map((e) => [e.seq, e.resource.id, e.searchable])).toEqual([[2, 'r.attempt', false], [3, 'kat-3', true]]);
      expect((await audit.entriesAfter(0, 1)).map((e) => e.seq)).toEqual([1]);
      expect((await audit.entriesAfter(3, 10))).toEqual([]);
      // Bodies are served for searchable events only, as the canonical JSON that was hashed.
      expect(JSON.parse((await audit.body('kat-3'))!)).toEqual(event(3));
      expect((await audit.body('r.attempt'))).toBeUndefined();
      expect((await Array.fromAsync(audit.searchableIds(3)))).toEqual(['kat-1', 'kat-3']);
      expect((await Array.fromAsync(audit.searchableIds(2)))).toEqual(['kat-1']);
    });

    it('indexes idempotently by sequence number: the mark and the events it covers move together', async () => {
      const { index } = await fresh();
      expect((await index.indexedThrough())).toBe(0);
      const entry = (id: string) => ({ id, recorded: '2026-01-01T00:00:00.000Z', index: [{ param: 'action', grp: 0, code: 'R' }] });
      await index.index([entry('b'), entry('a')], 2);
      expect((await index.indexedThrough())).toBe(2);
      // A second indexer that read the same range finds the mark there and adds nothing.
      await index.index([entry('b'), entry('c')], 2);
      expect((await Array.fromAsync(index.ids()))).toEqual(['a', 'b']);
      await index.index([entry('c')], 5);
      expect((await index.indexedThrough())).toBe(5);
      expect((await Array.fromAsync(index.ids()))).toEqual(['a', 'b', 'c']);
    });

    it('removes from the index exactly the events recorded before a purge\'s cutoff', async () => {
      const { index } = await fresh();
      // As the indexer indexes them: `date` is `recorded`, an instant, as its millisecond.
      const entry = (id: string, recorded: string) => {
        const at = Date.parse(recorded);
        return { id, recorded, index: [{ param: 'date', grp: 0, lo: at, hi: at + 1 }, { param: 'action', grp: 0, code: 'R' }] };
      };
      await index.index([entry('a', '2026-01-01T00:00:00.000Z'), entry('b', '2026-01-01T23:59:59.999Z'), entry('c', '2026-01-02T00:00:00.000Z')], 3);
      expect((await index.removeBefore('2026-01-02T00:00:00.000Z'))).toBe(2);
      expect((await Array.fromAsync(index.ids()))).toEqual(['c']);
      expect((await index.removeBefore('2026-01-02T00:00:00.000Z'))).toBe(0);
      expect((await index.indexedThrough())).toBe(3);
    });

    it('appends a batch as one transaction: a failure keeps none of it', async () => {
      const { audit } = await fresh();
      await audit.appendAudit([append(event(1))]);
      const failing: CheckpointSigner = () => {
        throw new Error('signer down');
      };
      await expect(audit.appendAudit([append(event(2)), append(event(3))], failing)).rejects.toThrow('signer down');
      expect((await Array.fromAsync(audit.chain())).map((l) => l.id)).toEqual(['kat-1']);
      await audit.appendAudit([append(event(2))]);
      expect((await Array.fromAsync(audit.chain())).map((l) => l.seq)).toEqual([1, 2]);
    });

    it('stores the checkpoints its signer makes, and they verify against the public key', async () => {
      const { audit } = await fresh();
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const sign = checkpointSigner({ privateKey, publicKey, keyId: 'k1' }, () => new Date('2026-01-01T00:00:00Z'));
      await audit.appendAudit([append(event(1))], sign);
      await audit.appendAudit([append(event(2)), append(event(3))], sign);
      // The head of every batch is signed.
      expect((await audit.checkpoints()).map((c) => [c.seq, c.keyId])).toEqual([[1, 'k1'], [3, 'k1']]);
      expect(await verifyChain(audit, publicKey)).toMatchObject({ ok: true, events: 3, checkpoints: 2 });
      expect(await verifyChain(audit, generateKeyPairSync('ed25519').publicKey)).toMatchObject({ ok: false, problem: 'checkpoint at seq 1: bad signature' });
    });

    it('reads the events recorded in [from, to), in chain order', async () => {
      const { audit } = await fresh();
      await audit.appendAudit([1, 2, 3, 4].map((n) => append(event(n))));
      const ids = (await Array.fromAsync(audit.eventsBetween('2026-01-01T00:00:01.000Z', '2026-01-01T00:00:03.000Z'))).map((e) => e.id);
      expect(ids).toEqual(['kat-2', 'kat-3']);
    });

    it('purges only events before the cutoff, anchors the rest, and chains the purge itself', async () => {
      const { audit } = await fresh();
      await audit.appendAudit([1, 2, 3].map((n) => append(event(n))));
      const before = (await Array.fromAsync(audit.chain()));
      const record = await audit.purgeAudit(
        '2026-01-01T00:00:02.000Z',
        (count, throughSeq) => append({ ...event(9, '2026-01-02T00:00:00.000Z'), id: `purge-${count}-${throughSeq}` }),
        '2026-01-02T00:00:00.000Z',
      );
      expect(record).toMatchObject({ throughSeq: 2, lastHash: before[1].hash, count: 2, cutoff: '2026-01-01T00:00:02.000Z' });
      expect((await audit.purges())).toEqual([record]);
      expect((await Array.fromAsync(audit.chain())).map((l) => [l.seq, l.id])).toEqual([[3, 'kat-3'], [4, 'purge-2-2']]);
      expect(await verifyChain(audit, undefined)).toMatchObject({ ok: true, events: 2 });
    });

    it('keeps a write-ahead attempt in the chain but out of reads, and lists it open until its request has an event', async () => {
      const { audit } = await fresh();
      const attempt = { ...append({ ...event(1), id: 'req-9.attempt' }), searchable: false };
      await audit.appendAudit([attempt]);
      expect((await Array.fromAsync(audit.chain())).map((l) => l.id)).toEqual(['req-9.attempt']);
      expect((await audit.openAttempts())).toEqual([{ requestId: 'req-9', attempt: { ...event(1), id: 'req-9.attempt' } }]);
      await audit.appendAudit([append({ ...event(2), id: 'req-9' })]);
      expect((await audit.openAttempts())).toEqual([]);
    });

    it('offers no way to change or remove an event', async () => {
      const { audit } = await fresh();
      for (const m of ['update', 'delete', 'updateAudit', 'deleteAudit', 'write']) expect((audit as unknown as Record<string, unknown>)[m], m).toBeUndefined();
    });

    it('keeps what it acknowledged when opened anew', async () => {
      const s = await fresh();
      if (!s.reopen) return;
      await s.audit.appendAudit([append(event(1))]);
      await s.close();
      opened.splice(opened.indexOf(s), 1);
      const again = await s.reopen();
      opened.push(again);
      expect((await Array.fromAsync(again.audit.chain())).map((l) => l.hash)).toEqual(['1d5f6f6b1168d000ed155d0007e94684e1e3ac5b61f5565a5db918e328b1f6d6']);
    });
  });
}
