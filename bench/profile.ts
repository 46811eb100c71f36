// npm run bench:profile — where the fully secured read spends its CPU. Starts the bench servers
// (bench/servers.ts) with V8's sampling profiler, loads the secured read (ES256 token,
// authorization, decryption, durable audit) for BENCH_SECONDS, and prints the ten functions
// with the most self time on the request thread. docs/performance.md records the result.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { freePort } from './free-port.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROOT = new URL('..', import.meta.url).pathname;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

const dir = mkdtempSync(join(tmpdir(), 'hearth-profile-'));
const ports = await Promise.all([1, 2, 3, 4, 5, 6, 7].map(() => freePort()));
const file = join(dir, 'read.cpuprofile');
const child: ChildProcess = spawn(process.execPath, [new URL('./servers.ts', import.meta.url).pathname, ...ports.map(String)], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, BENCH_PROFILE: file },
});
const [line] = await once(createInterface({ input: child.stdout! }), 'line');
const { readIds, token } = JSON.parse(line as string);
const readId = readIds[0];
const url = `http://127.0.0.1:${ports[0]}/fhir/Patient/${readId}`;
await autocannon({ url, headers: { authorization: `Bearer ${token}` }, connections: 10, duration: 2 }); // warm-up
const r = await autocannon({ url, headers: { authorization: `Bearer ${token}` }, connections: 10, duration: SECONDS });
child.kill('SIGTERM');
await once(child, 'exit');

const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[] };
const total = profile.samples.length;
const self = new Map<string, number>();
for (const n of profile.nodes) {
  const { functionName, url: file, lineNumber } = n.callFrame;
  const where = file ? `${relative(ROOT, file.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : '';
  const key = `${functionName || '(anonymous)'}\t${where}`;
  self.set(key, (self.get(key) ?? 0) + (n.hitCount ?? 0));
}
const idle = self.get('(idle)\t') ?? 0;
const busy = total - idle;
process.stdout.write(`secured read, 10 connections, ${SECONDS} s: ${r.requests.average.toFixed(0)} req/s (p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms)\n`);
process.stdout.write(`request thread busy ${((busy / total) * 100).toFixed(0)}% of ${total} samples; top self time, as % of busy samples:\n\n`);
process.stdout.write('| % | function | where |\n| --- | --- | --- |\n');
for (const [key, hits] of [...self].filter(([k]) => k !== '(idle)\t').sort((a, b) => b[1] - a[1]).slice(0, 10)) {
  const [fn, where] = key.split('\t');
  process.stdout.write(`| ${((hits / busy) * 100).toFixed(1)} | \`${fn}\` | ${where || '(native)'} |\n`);
}
rmSync(dir, { recursive: true, force: true });
