import { createHash, type KeyObject, verify as verifySignature } from 'node:crypto';
import type { AuditIndex, AuditStore, Checkpoint } from './audit-store.ts';
import { canonicalJson } from './canonical-json.ts';

export const GENESIS = '0'.repeat(64);

/** SHA-256 over the predecessor's hash, the sequence number and the event's canonical JSON. */
export function linkHash(prevHash: string, seq: number, event: unknown): string {
  return linkHashOfCanonical(prevHash, seq, canonicalJson(event));
}

/** The same, for an event already serialized canonically (the write path stores exactly that). */
export function linkHashOfCanonical(prevHash: string, seq: number, canonical: string): string {
  return createHash('sha256').update(`${prevHash}\n${seq}\n${canonical}`).digest('hex');
}

export function checkpointMessage(seq: number, hash: string, signedAt: string): Buffer {
  return Buffer.from(`hearth-audit-checkpoint\n${seq}\n${hash}\n${signedAt}`, 'utf8');
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly events: number;
  readonly checkpoints: number;
  readonly head?: { seq: number; hash: string };
  /** the first problem found, naming its place */
  readonly problem?: string;
  /** witnessed heads found in the chain, when heads from a witness were given */
  readonly witnessed?: number;
}

/**
 * Walks the whole chain from its anchor (genesis, or the last retention purge) and every signed
 * checkpoint. Any edit, deletion, insertion or reordering of an event breaks a link; removing
 * events from the end is caught by the next checkpoint above the new head. With the heads an
 * outside witness saw, each (signature checked) must still be in the chain with the same hash,
 * which catches a tail cut together with its checkpoints, a rollback, a replaced log — in the
 * same walk. With the search index, what auditors search must be exactly the log's searchable
 * events (through the indexed mark): an AuditEvent slipped into the index behind the chain's back,
 * or one removed from it, is named.
 */
export function verifyChain(
  store: AuditStore,
  publicKey: KeyObject | undefined,
  witnessHeads?: readonly Checkpoint[],
  index?: AuditIndex,
): VerifyResult {
  const purges = store.purges();
  const anchor = purges.reduce((a, p) => (p.throughSeq > a.seq ? { seq: p.throughSeq, hash: p.lastHash } : a), {
    seq: 0,
    hash: GENESIS,
  });
  let prev = anchor;
  let events = 0;
  const hashAt = new Map<number, string>();
  const fail = (problem: string): VerifyResult => ({ ok: false, events, checkpoints: 0, head: prev.seq ? prev : undefined, problem });
  for (const link of store.chain()) {
    if (link.seq <= anchor.seq) return fail(`seq ${link.seq}: present although purged through seq ${anchor.seq}`);
    if (link.seq !== prev.seq + 1) {
      return fail(`seq ${prev.seq + 1}: missing (the chain jumps from seq ${prev.seq} to seq ${link.seq})`);
    }
    if (link.prevHash !== prev.hash) return fail(`seq ${link.seq}: does not follow seq ${prev.seq} (link broken: reordered or inserted)`);
    if (link.body === undefined) return fail(`seq ${link.seq}: AuditEvent/${link.id} was removed or cannot be read`);
    // The body is stored in canonical form: hashed as it is, not parsed and re-serialised.
    if (linkHashOfCanonical(link.prevHash, link.seq, link.body) !== link.hash) {
      return fail(`seq ${link.seq}: AuditEvent/${link.id} was altered (hash mismatch)`);
    }
    if (!link.body.includes(`"id":${JSON.stringify(link.id)}`)) return fail(`seq ${link.seq}: holds the wrong event (expected AuditEvent/${link.id})`);
    prev = { seq: link.seq, hash: link.hash };
    hashAt.set(link.seq, link.hash);
    events++;
  }
  let checked = 0;
  for (const cp of store.checkpoints()) {
    if (cp.seq <= anchor.seq) continue;
    const problem = checkCheckpoint(cp, hashAt, prev.seq, publicKey);
    if (problem) return { ...fail(problem), checkpoints: checked };
    checked++;
  }
  const stray = index && strayIndexEntry(store, index, prev.seq);
  if (stray) return { ...fail(stray), checkpoints: checked };
  const head = prev.seq ? prev : undefined;
  if (!witnessHeads) return { ok: true, events, checkpoints: checked, head };
  let witnessed = 0;
  for (const w of witnessHeads) {
    const problem = checkWitnessed(w, hashAt, anchor.seq, prev.seq, publicKey);
    if (problem) return { ok: false, events, checkpoints: checked, head, problem, witnessed };
    if (w.seq > anchor.seq) witnessed++;
  }
  return { ok: true, events, checkpoints: checked, head, witnessed };
}

function signedBy(cp: Checkpoint, publicKey: KeyObject): boolean {
  return verifySignature(null, checkpointMessage(cp.seq, cp.hash, cp.signedAt), publicKey, Buffer.from(cp.signature, 'base64'));
}

function checkWitnessed(
  w: Checkpoint,
  hashAt: Map<number, string>,
  anchor: number,
  head: number,
  publicKey: KeyObject | undefined,
): string | undefined {
  if (!publicKey || !signedBy(w, publicKey)) return `witness head at seq ${w.seq}: bad signature`;
  if (w.seq <= anchor) return undefined;
  if (w.seq > head) return `the witness saw seq ${w.seq} but the chain ends at seq ${head}: its tail was cut or it was rolled back`;
  if (hashAt.get(w.seq) !== w.hash) return `seq ${w.seq}: the chain differs from what the witness saw: rolled back to another copy or replaced`;
  return undefined;
}

function checkCheckpoint(cp: Checkpoint, hashAt: Map<number, string>, head: number, publicKey: KeyObject | undefined): string | undefined {
  if (cp.seq > head) return `checkpoint at seq ${cp.seq}: beyond the head (seq ${head}): events were removed from the end`;
  if (hashAt.get(cp.seq) !== cp.hash) return `checkpoint at seq ${cp.seq}: hash does not match the chain`;
  if (!publicKey) return `checkpoint at seq ${cp.seq}: no public key to check its signature`;
  return signedBy(cp, publicKey) ? undefined : `checkpoint at seq ${cp.seq}: bad signature`;
}

/** The first difference between the index's AuditEvents and the log's searchable ones, by id. */
function strayIndexEntry(store: AuditStore, index: AuditIndex, head: number): string | undefined {
  const mark = index.indexedThrough();
  if (mark > head) return `the search index holds events through seq ${mark} but the chain ends at seq ${head}: events were removed from the end`;
  const logged = store.searchableIds(index.indexedThrough())[Symbol.iterator]();
  const indexed = index.ids()[Symbol.iterator]();
  let a = logged.next();
  let b = indexed.next();
  while (!a.done || !b.done) {
    if (!b.done && (a.done || b.value < a.value)) return `AuditEvent/${b.value} is searchable but not in the chain (inserted behind its back)`;
    if (!a.done && (b.done || a.value < b.value)) return `AuditEvent/${a.value} is in the chain but missing from the search index`;
    a = logged.next();
    b = indexed.next();
  }
  return undefined;
}
