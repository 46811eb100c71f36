import { randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { existsSync, readFileSync } from 'node:fs';
import { buildOperatorEvent } from '../audit/audit-event.ts';
import type { AuditAppend, Checkpoint, CheckpointSigner } from '../audit/audit-store.ts';
import { anchorOf, compareIndex, verifyChain, type VerifyResult, verifyWalks, type Walk, wantedHashes } from '../audit/chain.ts';
import { auditReport } from '../audit/report.ts';
import { auditSigner, loadPublicKey, publicKeyPath as publicKeyOf } from '../audit/signing-key.ts';
import { openWitness, readWitness, witnessed } from '../audit/witness.ts';
import type { Config } from '../config/config.ts';
import { AuditIndexer } from '../audit/indexer.ts';
import { renderReport, reportOptions } from '../audit/report-request.ts';
import { loadFhirModel } from '../fhir/definitions.ts';
import { existingStorage } from '../store/open.ts';
import type { Storage } from '../store/port.ts';
import type { VerifyStretch } from './verify-worker.ts';

export class CliError extends Error {}

/** What differs between operator commands' AuditEvents; the rest is filled in by operatorEvent. */
export type OperatorAct = Omit<Parameters<typeof buildOperatorEvent>[0], 'id' | 'recorded' | 'operator' | 'baseUrl'> & {
  readonly command: string;
};

/** An operator command's AuditEvent, ready to append. */
function operatorEvent(config: Config, act: OperatorAct, now = new Date()): AuditAppend {
  const { command, ...rest } = act;
  const resource = buildOperatorEvent({
    ...rest,
    id: randomUUID(),
    recorded: now,
    operator: `hearth ${command} (uid ${process.getuid?.() ?? '?'})`,
    baseUrl: config.baseUrl,
  });
  return { resource };
}

/**
 * Appends an operator command's AuditEvent to the chain (signed checkpoint included), and brings
 * the search index up to the log (a running server's indexer would too, within a second).
 */
export async function recordOperatorEvent(config: Config, storage: Storage, act: OperatorAct): Promise<void> {
  await signedWrite(config, () => new Date(), (sign) => storage.audit.appendAudit([operatorEvent(config, act)], sign));
  await indexBehind(config, storage);
}

async function indexBehind(config: Config, storage: Storage): Promise<void> {
  // The model alone: compiling the resource validator (loadDefinitions) took ~0.75 s of every command.
  const indexer = new AuditIndexer(storage.audit, storage.auditIndex, loadFhirModel({ updateCreate: config.updateCreate }), config.baseUrl);
  await indexer.applyPurges();
  await indexer.catchUp();
}

/** An append to the chain whose new head is signed, and published to the witness once committed. */
async function signedWrite<T>(config: Config, clock: () => Date, write: (sign: CheckpointSigner) => Promise<T>): Promise<T> {
  const witness = openWitness(config.audit.witness);
  try {
    const w = witnessed(auditSigner(config.audit, clock), witness);
    const result = await write(w.sign);
    w.published();
    return result;
  } finally {
    witness?.close();
  }
}

const AUDIT_LOG_USED = { code: '110101', display: 'Audit Log Used' };

export async function openStore(config: Config): Promise<Storage> {
  const storage = await existingStorage(config);
  if (!storage) throw new CliError(`no Hearth database in ${config.dataDir} (HEARTH_DATA_DIR)`);
  return storage;
}

/** `hearth audit verify`: exit 0 and a summary when intact; exit 1 naming the first broken place. */
export async function auditVerify(
  config: Config,
  publicKeyPath?: string,
  witnessPath?: string,
  threadsFlag?: string,
): Promise<{ ok: boolean; text: string }> {
  const threads = threadsFlag === undefined ? undefined : Number(threadsFlag);
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 64)) {
    throw new CliError(`--threads must be a whole number from 1 to 64, got "${threadsFlag}"`);
  }
  const keyPath = publicKeyPath ?? publicKeyOf(config.audit.signingKey);
  if (!existsSync(keyPath)) throw new CliError(`no checkpoint public key at ${keyPath} (--public-key)`);
  if (witnessPath !== undefined && !existsSync(witnessPath)) throw new CliError(`no witness file at ${witnessPath} (--witness)`);
  const store = await openStore(config);
  try {
    const heads = witnessPath === undefined ? undefined : readWitness(readFileSync(witnessPath, 'utf8'));
    const r = await verifyInParallel(store, loadPublicKey(keyPath), heads, threads);
    const head = r.head ? `head seq ${r.head.seq} ${r.head.hash}` : 'empty chain';
    // Reading the audit log is recorded in it, after the walk (so a broken chain is not extended first).
    let unrecorded = '';
    try {
      await recordOperatorEvent(config, store, {
        command: 'audit verify',
        type: AUDIT_LOG_USED,
        action: 'R',
        object: 'audit log',
        description: r.ok ? `verified: ${r.events} events, ${r.checkpoints} checkpoints` : `verification failed at ${r.problem}`,
        outcome: r.ok ? '0' : '8',
      });
    } catch (err) {
      // A damaged log may refuse the append (what was cut may have left rows behind): the verdict still stands.
      unrecorded = `this verification could not be recorded in the audit log: ${(err as Error).message}\n`;
    }
    const seen = r.witnessed === undefined ? '' : `, ${r.witnessed} witnessed heads matched`;
    return r.ok && !unrecorded
      ? { ok: true, text: `audit chain intact: ${r.events} events, ${r.checkpoints} signed checkpoints verified${seen}, ${head}\n` }
      : {
          ok: false,
          text: r.ok
            ? `audit chain intact: ${r.events} events verified, ${head}; but ${unrecorded}`
            : `audit chain BROKEN at ${r.problem}\n(${r.events} events verified before it)\n${unrecorded}`,
        };
  } finally {
    await store.close();
  }
}

/** Below this many events one walk is quicker than starting threads. */
const PARALLEL_FROM = 20_000;

/**
 * The chain walked in stretches, one thread each (the walk is hashing and decompressing: CPU),
 * up to the head seen at the start; then joined and checked as one (chain.ts verifyWalks).
 */
async function verifyInParallel(store: Storage, publicKey: KeyObject, heads?: Checkpoint[], threads?: number): Promise<VerifyResult> {
  const anchor = await anchorOf(store.audit);
  const head = (await store.audit.head()).seq;
  const span = head - anchor.seq;
  const parts = Math.max(1, Math.min(threads ?? (span < PARALLEL_FROM ? 1 : availableParallelism()), span));
  if (parts < 2) return verifyChain(store.audit, publicKey, heads, store.auditIndex);
  const wanted = [...(await wantedHashes(store.audit, heads))];
  const size = Math.ceil(span / parts);
  const walking = Promise.all(
    Array.from({ length: parts }, (_, k) => {
      const begin = anchor.seq + 1 + k * size;
      const stretch: VerifyStretch = {
        // The first stretch also sees any link at or below the anchor (present although purged).
        from: k === 0 ? Number.MIN_SAFE_INTEGER : begin,
        to: k === parts - 1 ? head : begin + size - 1,
        start: k === 0 ? { seq: begin, prevHash: anchor.hash } : { seq: begin },
        anchorSeq: anchor.seq,
        wanted,
      };
      return new Promise<Walk>((resolve, reject) => {
        const worker = new Worker(new URL('./verify-worker.ts', import.meta.url), { workerData: stretch, name: 'hearth-verify' });
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    }),
  );
  // The index is compared with the log here while the threads walk (2-3 s of this thread at 1,000,000 events).
  const comparison = compareIndex(store.audit, store.auditIndex);
  comparison.catch(() => undefined);
  const walks = await walking;
  return verifyWalks(store.audit, anchor, walks, publicKey, heads, comparison, (await store.audit.head()).seq);
}

export async function auditReportCli(config: Config, args: { from?: string; to?: string; format?: string; top?: string }): Promise<string> {
  let parsed: ReturnType<typeof reportOptions>;
  try {
    parsed = reportOptions({ start: args.from, end: args.to, format: args.format ?? 'md', top: args.top });
  } catch (err) {
    throw new CliError((err as Error).message.replace(/\bstart\b/, '--from').replace(/\bend\b/, '--to').replace(/\btop\b/, '--top').replace(/\bformat\b/, '--format'));
  }
  const store = await openStore(config);
  try {
    const { options, format } = parsed;
    const report = await auditReport(store.audit.eventsBetween(options.from.toISOString(), options.to.toISOString()), options);
    await recordOperatorEvent(config, store, {
      command: 'audit report',
      type: AUDIT_LOG_USED,
      action: 'R',
      object: 'audit log',
      description: `report ${options.from.toISOString()} to ${options.to.toISOString()} (${format})`,
    });
    return renderReport(report, format).body;
  } finally {
    await store.close();
  }
}

/** Purges events older than the retention (or an earlier --before); the purge is chained. */
export async function auditPurge(config: Config, before: string | undefined, now = new Date()): Promise<string> {
  const retentionCutoff = new Date(now.getTime() - config.audit.retentionDays * 86_400_000);
  let cutoff = retentionCutoff;
  if (before !== undefined) {
    const t = Date.parse(before);
    if (!/^\d{4}-\d{2}-\d{2}/.test(before) || Number.isNaN(t)) throw new CliError('--before must be a date such as 2019-01-01');
    if (t > retentionCutoff.getTime()) {
      throw new CliError(`--before ${before} is inside the retention period (${config.audit.retentionDays} days): only events recorded before ${retentionCutoff.toISOString()} may be purged`);
    }
    cutoff = new Date(t);
  }
  const store = await openStore(config);
  try {
    const record = await signedWrite(config, () => now, (sign) => store.audit.purgeAudit(
      cutoff.toISOString(),
      (count, throughSeq) =>
        operatorEvent(
          config,
          {
            command: 'audit purge',
            type: AUDIT_LOG_USED,
            action: 'D',
            object: 'audit log',
            description: `retention purge of ${count} AuditEvents recorded before ${cutoff.toISOString()}, through chain seq ${throughSeq}`,
          },
          now,
        ),
      now.toISOString(),
      // The head right after the purge is signed too: the new anchor is covered.
      sign,
    ));
    // The searchable copy follows the log.
    await indexBehind(config, store);
    return `purged ${record.count} AuditEvents recorded before ${record.cutoff} (through seq ${record.throughSeq}); the purge is recorded in the chain\n`;
  } finally {
    await store.close();
  }
}
