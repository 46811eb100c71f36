// One stretch of `hearth audit verify`, on a thread of its own: opens the configured storage
// (from the same environment as the command), walks the links from..to and reports what it found.
import { parentPort, workerData } from 'node:worker_threads';
import { walkLinks, type WalkStart } from '../audit/chain.ts';
import { existingStorage } from '../store/open.ts';
import { loadConfig } from '../config/config.ts';

export interface VerifyStretch {
  readonly from: number;
  readonly to: number;
  readonly start: WalkStart;
  readonly anchorSeq: number;
  readonly wanted: number[];
}

const stretch = workerData as VerifyStretch;
const storage = await existingStorage(loadConfig(process.env));
if (!storage) throw new Error('no Hearth database');
try {
  const links = storage.audit.chain(stretch.from, stretch.to);
  parentPort?.postMessage(await walkLinks(links, stretch.start, stretch.anchorSeq, new Set(stretch.wanted), stretch.to));
} finally {
  await storage.close();
}
