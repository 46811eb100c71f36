// npm run audit:deps — the production dependencies against the npm advisory database: fails on a
// high or critical advisory. Where the registry cannot answer (offline, or a mirror without the
// advisory endpoint) it says so on standard error and passes: the check was not made, and the
// notice says it was not, rather than failing every build for a network it cannot reach.
import { spawnSync } from 'node:child_process';

const run = spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8', shell: process.platform === 'win32' });
interface Report {
  error?: { summary?: string };
  message?: string;
  metadata?: { vulnerabilities?: Record<string, number> };
}
let report: Report;
try {
  report = JSON.parse(run.stdout);
} catch {
  report = { message: (run.stderr || run.stdout || 'no output').trim().split('\n')[0] };
}
const counts = report.metadata?.vulnerabilities;
if (!counts) {
  const why = report.error?.summary || report.message || 'no report';
  process.stderr.write(`audit:deps: NOT CHECKED — the registry gave no advisory report (${why.slice(0, 200)})\n`);
  process.exit(0);
}
const serious = (counts.high ?? 0) + (counts.critical ?? 0);
process.stdout.write(`audit:deps: production dependencies — ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
if (serious > 0) {
  process.stderr.write('audit:deps: high or critical advisories: run `npm audit --omit=dev` for the list\n');
  process.exit(1);
}
