import type { KeyObject } from 'node:crypto';
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import type { AuditConfig } from '../config/config.ts';
import type { AuditStore, Checkpoint, CheckpointSigner } from './audit-store.ts';
import { verifyChain } from './chain.ts';

/**
 * The outside witness of the audit chain: every signed head, published as it is made to a place
 * the data directory's owner does not control (a file on another volume, or standard output for
 * a log collector). `hearth audit verify --witness` compares the chain with it, which catches
 * what the database alone cannot show: its tail cut together with the checkpoints, a rollback to
 * an older copy, a log replaced by another.
 */
export interface Witness {
  publish(head: Checkpoint): void;
  close(): void;
}

const MARK = 'hearth-audit-head';

export function openWitness(target: AuditConfig['witness']): Witness | undefined {
  if (!target) return undefined;
  const line = (head: Checkpoint) => `${JSON.stringify({ [MARK]: head })}\n`;
  if (target.kind === 'stdout') {
    return { publish: (head) => void process.stdout.write(line(head)), close: () => undefined };
  }
  const fd = openSync(target.path, 'a', 0o600);
  return {
    publish(head) {
      writeSync(fd, line(head));
      // On disk before the batch is acknowledged: the witness never lags what a client was told.
      fdatasyncSync(fd);
    },
    close: () => closeSync(fd),
  };
}

/**
 * A signer whose heads reach the witness once their batch has committed: `sign` inside the
 * append transaction, `published` after it (a rolled-back batch publishes nothing).
 */
export function witnessed(sign: CheckpointSigner, witness: Witness | undefined): { sign: CheckpointSigner; published: () => void } {
  let made: Checkpoint | undefined;
  return {
    sign: (head, last) => {
      made = sign(head, last);
      return made;
    },
    published: () => {
      if (made && witness) witness.publish(made);
      made = undefined;
    },
  };
}

/** The signed heads in a witness file or a collected log (other lines are skipped). */
export function readWitness(text: string): Checkpoint[] {
  const heads: Checkpoint[] = [];
  for (const line of text.split('\n')) {
    const at = line.indexOf(`{"${MARK}"`);
    if (at === -1) continue;
    try {
      const head = (JSON.parse(line.slice(at)) as Record<string, Checkpoint>)[MARK];
      if (Number.isInteger(head?.seq) && typeof head.hash === 'string' && typeof head.signature === 'string') heads.push(head);
    } catch {
      // a line cut short by a crash: the heads before it still count
    }
  }
  return heads;
}

export interface WitnessResult {
  readonly ok: boolean;
  /** heads compared with the chain */
  readonly heads: number;
  readonly problem?: string;
}

/** Each witnessed head, signed by the audit key, must still be in an intact chain with the same hash. */
export async function verifyWitness(store: AuditStore, heads: readonly Checkpoint[], publicKey: KeyObject): Promise<WitnessResult> {
  const r = await verifyChain(store, publicKey, heads);
  return { ok: r.ok, heads: r.witnessed ?? 0, ...(r.problem ? { problem: r.problem } : {}) };
}
