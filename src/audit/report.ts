import type { AuditEvent } from 'fhir/r4.js';
import { PHASE_SYSTEM } from './audit-event.ts';

export interface ReportOptions {
  readonly from: Date;
  readonly to: Date;
  /** how many patients to list by number of accesses */
  readonly top: number;
  /** working hours, UTC, [start, end) */
  readonly workingHours: { readonly start: number; readonly end: number };
  /** requests by one user within one minute that count as a burst */
  readonly burstPerMinute: number;
}

export interface AuditReport {
  readonly period: { readonly from: string; readonly to: string };
  readonly totals: { readonly events: number; readonly byAction: Record<string, number>; readonly byOutcome: Record<string, number> };
  readonly uniqueUsers: number;
  readonly uniqueClients: number;
  readonly failures: { readonly total: number; readonly byStatus: Record<string, number> };
  readonly refusals: { readonly unauthenticated: number; readonly forbidden: number; readonly throttled: number };
  readonly phiAccess: { readonly events: number; readonly topPatients: { readonly patient: string; readonly accesses: number }[] };
  readonly outsideWorkingHours: { readonly events: number; readonly byUser: { readonly user: string; readonly events: number }[] };
  readonly bursts: { readonly user: string; readonly minute: string; readonly events: number }[];
  readonly byDay: { readonly day: string; readonly events: number; readonly failures: number }[];
}

const ACTION_NAMES: Record<string, string> = { C: 'create', R: 'read', U: 'update', D: 'delete', E: 'execute/search' };
const OUTCOME_NAMES: Record<string, string> = { 0: 'success', 4: 'minor failure', 8: 'serious failure', 12: 'major failure' };

function userOf(e: AuditEvent): string {
  const a = e.agent.find((x) => x.requestor) ?? e.agent[0];
  return a?.who?.reference ?? (a?.who?.identifier ? `${a.who.identifier.system}|${a.who.identifier.value}` : (a?.name ?? 'unknown'));
}

function clientOf(e: AuditEvent): string | undefined {
  const app = e.agent.find((x) => x.type?.coding?.some((c) => c.code === '110150'));
  const id = (app ?? e.agent.find((x) => x.requestor))?.who?.identifier;
  return id ? `${id.system}|${id.value}` : undefined;
}

const inc = (m: Record<string, number>, k: string) => {
  m[k] = (m[k] ?? 0) + 1;
};

/** Totals, users, failures, refusals, PHI access per patient, after-hours access and bursts over a period. */
export async function auditReport(events: AsyncIterable<AuditEvent>, o: ReportOptions): Promise<AuditReport> {
  const byAction: Record<string, number> = {};
  const byOutcome: Record<string, number> = {};
  const byStatus: Record<string, number> = {};
  const users = new Set<string>();
  const clients = new Set<string>();
  const patients = new Map<string, number>();
  const afterHours = new Map<string, number>();
  const perMinute = new Map<string, number>();
  const days = new Map<string, { events: number; failures: number }>();
  let total = 0;
  let failures = 0;
  let phiEvents = 0;
  let outside = 0;
  const refusals = { unauthenticated: 0, forbidden: 0, throttled: 0 };
  for await (const e of events) {
    // A write-ahead attempt is reported through the event that follows it (its request's own).
    if (e.subtype?.some((c) => c.system === PHASE_SYSTEM && c.code === 'attempt')) continue;
    total++;
    inc(byAction, ACTION_NAMES[e.action ?? 'E'] ?? String(e.action));
    inc(byOutcome, OUTCOME_NAMES[e.outcome ?? '0'] ?? String(e.outcome));
    const user = userOf(e);
    users.add(user);
    const client = clientOf(e);
    if (client) clients.add(client);
    const status = e.outcomeDesc?.split(' ')[0];
    if (e.outcome && e.outcome !== '0') {
      failures++;
      if (status) inc(byStatus, status);
      if (status === '401') refusals.unauthenticated++;
      if (status === '403') refusals.forbidden++;
      if (status === '429') refusals.throttled++;
    }
    const touched = new Set(
      (e.entity ?? []).filter((x) => x.role?.code === '1' && x.what?.reference).map((x) => x.what!.reference as string),
    );
    if (touched.size > 0 && e.outcome === '0') {
      phiEvents++;
      for (const p of touched) patients.set(p, (patients.get(p) ?? 0) + 1);
    }
    const at = new Date(e.recorded);
    const hour = at.getUTCHours();
    const day = at.getUTCDay();
    if (hour < o.workingHours.start || hour >= o.workingHours.end || day === 0 || day === 6) {
      outside++;
      afterHours.set(user, (afterHours.get(user) ?? 0) + 1);
    }
    const minute = e.recorded.slice(0, 16);
    const key = `${user}\u0000${minute}`;
    perMinute.set(key, (perMinute.get(key) ?? 0) + 1);
    const d = days.get(e.recorded.slice(0, 10)) ?? { events: 0, failures: 0 };
    d.events++;
    if (e.outcome !== '0') d.failures++;
    days.set(e.recorded.slice(0, 10), d);
  }
  const bursts = [...perMinute]
    .filter(([, n]) => n >= o.burstPerMinute)
    .map(([k, n]) => {
      const [user, minute] = k.split('\u0000');
      return { user, minute: `${minute}Z`, events: n };
    })
    .sort((a, b) => b.events - a.events);
  return {
    period: { from: o.from.toISOString(), to: o.to.toISOString() },
    totals: { events: total, byAction, byOutcome },
    uniqueUsers: users.size,
    uniqueClients: clients.size,
    failures: { total: failures, byStatus },
    refusals,
    phiAccess: {
      events: phiEvents,
      topPatients: [...patients]
        .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
        .slice(0, o.top)
        .map(([patient, accesses]) => ({ patient, accesses })),
    },
    outsideWorkingHours: {
      events: outside,
      byUser: [...afterHours].sort((a, b) => b[1] - a[1]).map(([user, n]) => ({ user, events: n })),
    },
    bursts,
    byDay: [...days].sort((a, b) => a[0].localeCompare(b[0])).map(([day, v]) => ({ day, ...v })),
  };
}

export function reportMarkdown(r: AuditReport): string {
  const table = (head: [string, string], rows: [string, string | number][]) =>
    rows.length === 0 ? '_none_\n' : `| ${head[0]} | ${head[1]} |\n| --- | ---: |\n${rows.map(([a, b]) => `| ${a} | ${b} |`).join('\n')}\n`;
  return [
    `# Audit report ${r.period.from} – ${r.period.to}`,
    '',
    `- events: **${r.totals.events}**`,
    `- unique users: **${r.uniqueUsers}**, unique clients: **${r.uniqueClients}**`,
    `- failures and refusals: **${r.failures.total}** (unauthenticated ${r.refusals.unauthenticated}, forbidden ${r.refusals.forbidden}, throttled ${r.refusals.throttled})`,
    `- events touching patient data: **${r.phiAccess.events}**`,
    `- events outside working hours: **${r.outsideWorkingHours.events}**`,
    '',
    '## By action',
    table(['action', 'events'], Object.entries(r.totals.byAction)),
    '## By outcome',
    table(['outcome', 'events'], Object.entries(r.totals.byOutcome)),
    '## Failures by status',
    table(['status', 'events'], Object.entries(r.failures.byStatus)),
    '## Patients by number of accesses',
    table(['patient', 'accesses'], r.phiAccess.topPatients.map((p) => [p.patient, p.accesses])),
    '## Outside working hours, by user',
    table(['user', 'events'], r.outsideWorkingHours.byUser.map((u) => [u.user, u.events])),
    '## Bursts',
    table(['user @ minute', 'events'], r.bursts.map((b) => [`${b.user} @ ${b.minute}`, b.events])),
  ].join('\n');
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A horizontal bar chart as inline SVG: no script, no external resource. */
function barChart(title: string, rows: [string, number][]): string {
  if (rows.length === 0) return `<h2>${esc(title)}</h2><p>none</p>`;
  const max = Math.max(...rows.map(([, n]) => n), 1);
  const h = 22;
  const bars = rows
    .map(
      ([label, n], i) =>
        `<text x="0" y="${i * h + 15}" font-size="12">${esc(label.slice(0, 40))}</text>` +
        `<rect x="260" y="${i * h + 4}" width="${Math.max(1, (n / max) * 400)}" height="14" fill="#3b6ea8"><title>${n}</title></rect>` +
        `<text x="${266 + (n / max) * 400}" y="${i * h + 15}" font-size="12">${n}</text>`,
    )
    .join('');
  return `<h2>${esc(title)}</h2><svg role="img" aria-label="${esc(title)}" width="720" height="${rows.length * h + 6}" xmlns="http://www.w3.org/2000/svg">${bars}</svg>`;
}

export function reportHtml(r: AuditReport): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Audit report</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}dt{font-weight:600}dd{margin:0 0 .5em}</style></head><body>
<h1>Audit report</h1><p>${esc(r.period.from)} – ${esc(r.period.to)}</p>
<dl><dt>Events</dt><dd>${r.totals.events}</dd><dt>Unique users / clients</dt><dd>${r.uniqueUsers} / ${r.uniqueClients}</dd>
<dt>Failures and refusals</dt><dd>${r.failures.total} (unauthenticated ${r.refusals.unauthenticated}, forbidden ${r.refusals.forbidden}, throttled ${r.refusals.throttled})</dd>
<dt>Events touching patient data</dt><dd>${r.phiAccess.events}</dd><dt>Outside working hours</dt><dd>${r.outsideWorkingHours.events}</dd></dl>
${barChart('Events per day', r.byDay.map((d) => [d.day, d.events]))}
${barChart('By action', Object.entries(r.totals.byAction))}
${barChart('By outcome', Object.entries(r.totals.byOutcome))}
${barChart('Failures by status', Object.entries(r.failures.byStatus))}
${barChart('Patients by number of accesses', r.phiAccess.topPatients.map((p) => [p.patient, p.accesses]))}
${barChart('Outside working hours, by user', r.outsideWorkingHours.byUser.map((u) => [u.user, u.events]))}
${barChart('Bursts (user @ minute)', r.bursts.map((b) => [`${b.user} @ ${b.minute}`, b.events]))}
</body></html>
`;
}
