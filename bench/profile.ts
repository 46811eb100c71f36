// npm run bench:profile — where the fully secured read spends its CPU. Starts the bench servers
// (bench/servers.ts) with V8's sampling profiler, loads the secured read (ES256 token,
// authorization, decryption, durable audit) for BENCH_SECONDS, and prints the ten functions
// with the most self time on the request thread, then the CPU time each of the process's threads
// spent meanwhile (Linux): the audit commits and their indexing run on threads of their own, so
// the request thread's profile alone does not say what an audited read costs.
// docs/performance.md records the result.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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
const ports = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(() => freePort()));
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
const before = threadTimes(child.pid!);
const r = await autocannon({ url, headers: { authorization: `Bearer ${token}` }, connections: 10, duration: SECONDS });
const after = threadTimes(child.pid!);
child.kill('SIGTERM');
await once(child, 'exit');

/**
 * CPU time (user + system, in clock ticks) of each of the process's threads, summed by what the
 * thread is: its name (the request thread, the store's named threads: src/store/sqlite/thread.ts),
 * V8's helper threads (garbage collection, compilation) together, the rest together. Linux only.
 */
function threadTimes(pid: number): Map<string, number> {
  const times = new Map<string, number>();
  if (!existsSync(`/proc/${pid}/task`)) return times;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const what = comm === 'MainThread' ? 'request thread' : comm.startsWith('hearth-') ? comm : comm === 'V8Worker' ? 'V8 helper threads' : 'other';
      times.set(what, (times.get(what) ?? 0) + Number(fields[11]) + Number(fields[12]));
    } catch {
      // a thread that ended meanwhile
    }
  }
  return times;
}

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
if (after.size > 0) {
  // Ticks are 10 ms (USER_HZ 100): µs of CPU a request = ticks × 10,000 ÷ requests.
  process.stdout.write('\nCPU time of each thread (all seven bench servers share the process; only this one is loaded):\n\n');
  process.stdout.write('| thread | % of a core | µs of CPU a request |\n| --- | --- | --- |\n');
  for (const [what, ticks] of [...after].map(([w, t]) => [w, t - (before.get(w) ?? 0)] as const).sort((a, b) => b[1] - a[1])) {
    if (ticks <= 0) continue;
    process.stdout.write(`| ${what} | ${(ticks / SECONDS).toFixed(0)} | ${((ticks * 10_000) / r.requests.total).toFixed(0)} |\n`);
  }
}
rmSync(dir, { recursive: true, force: true });
