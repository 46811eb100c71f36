import { type Clause, type Cursor, type EntryPredicate, type SearchQuery, type SortKey, sortParams } from '../../fhir/query.ts';
import { AUDIT_INDEX_SCHEMA, ID_PARAM } from './sqlite-schema.ts';

export type SqlValue = string | number | null;

export interface Sql {
  text: string;
  params: SqlValue[];
}

// The largest code point: `prefix || MAX_CHAR` bounds every string that starts with `prefix`.
const MAX_CHAR = '\u{10FFFF}';
type Alias = (prefix: string) => string;

interface Tables {
  readonly versions: string;
  readonly index: string;
  /** the number of a (type, parameter) in the file's dictionary: binds the type and then the parameter */
  readonly pid: string;
  /** the file's dictionary of systems (an entry's `sys` is a number there) */
  readonly systems: string;
}

const tables = (q: string): Tables => ({
  versions: `${q}resource_versions`,
  index: `${q}search_index`,
  // An uncorrelated subquery: evaluated once per statement, and a constant to the index lookups
  // on it. A parameter the file has never had matches nothing.
  pid: `(SELECT pid FROM ${q}search_params WHERE type = ? AND param = ?)`,
  systems: `${q}search_systems`,
});
const AUDIT_TABLES = tables(`${AUDIT_INDEX_SCHEMA}.`);
const RESOURCE_TABLES = tables('main.');

/** Where a type's versions and index entries are: AuditEvents' in the attached audit index (sqlite-schema.ts). */
export function tablesOf(type: string): Tables {
  return type === 'AuditEvent' ? AUDIT_TABLES : RESOURCE_TABLES;
}

/** Table aliases numbered per statement, so that one query shape always gives the same SQL text. */
function aliases(): Alias {
  let n = 0;
  return (prefix) => `${prefix}${n++}`;
}

/** Translates the store-agnostic query into SQL over resource_versions (alias `r`) and search_index. */
function whereSql(type: string, clauses: readonly Clause[], alias: Alias, r = 'r'): Sql {
  // With an equality on an id, identifier or reference (subject=, patient=, ...), the resources it names
  // drive the query by rowid and every other clause is probed per candidate through the
  // (rid, pid) primary key: a patient's month of AuditEvents costs its few rows, not a scan of
  // every event in a date range.
  const driver = clauses.find(isCodeEquality);
  // Otherwise, a clause that reads the index (an uncorrelated `rid IN (...)`) drives all the same:
  // scanning every current resource of the type and probing each costs as many rows as the type
  // holds whatever the values (a family= search went from 7 to 30 ms over a 20-minute soak as
  // Patients were added), while the rids a clause selects are never more than that. Without such
  // a clause (no criteria, or only :not / :missing), the type's index is the way in; and an `_id`
  // equality drives through it, by (type, id).
  const readsIndex = (c: Clause): boolean =>
    (c.kind === 'exists' && c.param !== ID_PARAM && c.where.length > 0) || c.kind === 'composite' || c.kind === 'chain' || (c.kind === 'or' && c.any.length > 0 && c.any.every(readsIndex)) ||
    (c.kind === 'and' && c.all.some(readsIndex));
  const byId = driver?.kind === 'exists' && driver.param === ID_PARAM;
  const off = !byId && clauses.some(readsIndex) ? '+' : '';
  const parts = [`${off}${r}.type = ?`, `${off}${r}.current = 1`, `${r}.deleted = 0`];
  const params: SqlValue[] = [type];
  for (const [c, probed] of driven(clauses)) {
    const s = clauseSql(type, c, alias, r, probed);
    parts.push(s.text);
    params.push(...s.params);
  }
  return { text: parts.join(' AND '), params };
}

/**
 * Clauses that must all hold, in the order written, each with whether it is probed per candidate:
 * the first selective enough to drive (isCodeEquality) leads, uncorrelated, and the others are
 * probed; none leads where the clauses are probed already (`correlated`).
 */
function driven(clauses: readonly Clause[], correlated = false): [Clause, boolean][] {
  const lead = correlated ? undefined : clauses.find(isCodeEquality);
  const others = clauses.filter((c) => c !== lead).map((c): [Clause, boolean] => [c, correlated || lead !== undefined]);
  return lead ? [[lead, false], ...others] : others;
}

/**
 * A clause selective enough to drive: equality on `_id`, an identifier, a reference (a value
 * with a `/`: one patient, one subject) or a whole string (`selective`), alternatives that all are
 * (AuditEvent's `patient=` is one over `agent` and one over `entity`, search-clauses.ts), or
 * clauses together of which one is (an encrypted `:exact`, blind-index.ts). A token such as
 * gender or status may match half the store, so those keep the plan that intersects whole index
 * ranges.
 */
function isCodeEquality(c: Clause): boolean {
  if (c.kind === 'or') return c.any.length > 0 && c.any.every(isCodeEquality);
  if (c.kind === 'and') return c.all.some(isCodeEquality);
  if (c.kind !== 'exists') return false;
  const selective = c.selective === true || c.param === '_id' || c.param === 'identifier' || c.param.endsWith(':identifier');
  return c.where.some(
    (p) =>
      p.field === 'code' &&
      (p.op === 'eq' || p.op === 'in') &&
      (selective || [p.value].flat().every((v) => typeof v === 'string' && v.includes('/'))),
  );
}

function clauseSql(type: string, clause: Clause, alias: Alias, r: string, correlated = false): Sql {
  switch (clause.kind) {
    case 'exists': {
      if (clause.param === ID_PARAM) {
        // The one entry `_id` would have is the row's own id as its code (ID_PARAM): its
        // predicates are the row's.
        const preds = predicatesSql(clause.where, (field) => (field === 'code' ? `${r}.id` : 'NULL'));
        return { text: `(1${preds.text})`, params: preds.params };
      }
      const i = alias('i');
      const { index, pid, systems } = tablesOf(type);
      // `:missing` (no predicates) too: no index holds every entry of a parameter (an entry may
      // have neither a code nor a range), so its rids would be a scan of every entry.
      if (correlated || clause.where.length === 0) {
        // Probed through the primary key (rid, pid): its values compared as `+column`, which no
        // index serves, so that the planner does not scan a value range of every resource instead.
        const preds = predicatesSql(clause.where, (field) => `+${i}.${field}`, systems);
        return {
          text: `EXISTS (SELECT 1 FROM ${index} ${i} WHERE ${i}.rid = ${r}.rid AND ${i}.pid = ${pid}${preds.text})`,
          params: [type, clause.param, ...preds.params],
        };
      }
      // An uncorrelated IN (...) is evaluated once from the index, then joined by rowid:
      // far cheaper than a correlated EXISTS probed for every candidate resource.
      const preds = predicatesSql(clause.where, columnsOf(i), systems);
      return {
        text: `${r}.rid IN (SELECT ${i}.rid FROM ${index} ${i} WHERE ${i}.pid = ${pid}${preds.text}${impliedIndex(clause.where, i)})`,
        params: [type, clause.param, ...preds.params],
      };
    }
    case 'composite': {
      // Component i+1 must sit in the same group (and resource) as component 0.
      const c0 = alias('c');
      const { index, pid, systems } = tablesOf(type);
      const first = predicatesSql(clause.components[0] ?? [], columnsOf(c0), systems);
      let text = `${r}.rid IN (SELECT ${c0}.rid FROM ${index} ${c0} WHERE ${c0}.pid = ${pid}${first.text}${impliedIndex(clause.components[0] ?? [], c0)}`;
      const params: SqlValue[] = [type, `${clause.param}$0`, ...first.params];
      clause.components.slice(1).forEach((preds, k) => {
        const c = alias('c');
        const p = predicatesSql(preds, (field) => `+${c}.${field}`, systems);
        text += ` AND EXISTS (SELECT 1 FROM ${index} ${c} WHERE ${c}.rid = ${c0}.rid AND ${c}.pid = ${pid} AND ${c}.grp = ${c0}.grp${p.text})`;
        params.push(type, `${clause.param}$${k + 1}`, ...p.params);
      });
      return { text: `${text})`, params };
    }
    case 'chain': {
      const i = alias('i');
      const r2 = alias('t');
      const inner = whereSql(clause.targetType, clause.where, alias, r2);
      const { index, pid } = tablesOf(type);
      return {
        text: `${r}.rid IN (SELECT ${i}.rid FROM ${index} ${i} WHERE ${i}.pid = ${pid} AND ${i}.code IN (SELECT ? || ${r2}.id FROM ${tablesOf(clause.targetType).versions} ${r2} WHERE ${inner.text}))`,
        params: [type, clause.param, `${clause.targetType}/`, ...inner.params],
      };
    }
    case 'or': {
      if (clause.any.length === 0) return { text: '0', params: [] };
      const subs = clause.any.map((c) => clauseSql(type, c, alias, r, correlated));
      return { text: `(${subs.map((s) => s.text).join(' OR ')})`, params: subs.flatMap((s) => s.params) };
    }
    case 'and': {
      if (clause.all.length === 0) return { text: '1', params: [] };
      // As a search's own clauses: one that can drive does, the others are probed per candidate.
      const subs = driven(clause.all, correlated).map(([c, probed]) => clauseSql(type, c, alias, r, probed));
      return { text: `(${subs.map((s) => s.text).join(' AND ')})`, params: subs.flatMap((s) => s.params) };
    }
    case 'not': {
      const s = clauseSql(type, clause.clause, alias, r, correlated);
      return { text: `NOT (${s.text})`, params: s.params };
    }
  }
}

const columnsOf = (i: string) => (field: EntryPredicate['field']) => `${i}.${field}`;

/**
 * search_code and search_range are partial indexes (`code IS NOT NULL`, `lo IS NOT NULL`), and
 * SQLite uses one only where the query implies its condition, which a comparison of the column
 * does and a function of it (`:contains`' `instr`, `:below`'s `substr`) or predicates on `hi`
 * alone (`date=gt…`, `ge…`'s first alternative) do not: such a clause scanned every entry of every
 * parameter instead of its own in the index. It says so (true of every entry it can match: one
 * with a range has `lo` and `hi` set together).
 */
function impliedIndex(preds: readonly EntryPredicate[], i: string): string {
  if (preds.some((p) => p.field === 'code' && (p.op === 'contains' || p.op === 'below'))) return ` AND ${i}.code IS NOT NULL`;
  const onHi = preds.some((p) => p.field === 'hi');
  const onLo = preds.some((p) => p.field === 'lo');
  return onHi && !onLo ? ` AND ${i}.lo IS NOT NULL` : '';
}

/**
 * `column`: the SQL of an entry's field (`+i.code` compares its values in a way no index serves);
 * `systems`: the dictionary an entry's `sys` is a number in (none: `sys` holds the text itself).
 */
function predicatesSql(preds: readonly EntryPredicate[], column: (field: EntryPredicate['field']) => string, systems?: string): Sql {
  let text = '';
  const params: SqlValue[] = [];
  for (const p of preds) {
    const col = column(p.field);
    if (p.field === 'sys' && p.op !== 'null' && systems) {
      // The numbers of the systems the predicate admits (none known: no entry matches).
      const inner = predicatesSql([p], () => 'sys');
      text += ` AND ${col} IN (SELECT sid FROM ${systems} WHERE 1${inner.text})`;
      params.push(...inner.params);
      continue;
    }
    switch (p.op) {
      case 'null':
        text += ` AND ${col} IS NULL`;
        break;
      case 'eq':
        text += ` AND ${col} = ?`;
        params.push(p.value as string | number);
        break;
      case 'ne':
        text += ` AND ${col} <> ?`;
        params.push(p.value);
        break;
      case 'lt':
      case 'le':
      case 'gt':
      case 'ge':
        text += ` AND ${col} ${{ lt: '<', le: '<=', gt: '>', ge: '>=' }[p.op]} ?`;
        params.push(p.value);
        break;
      case 'prefix':
        text += ` AND ${col} >= ? AND ${col} < ?`;
        params.push(p.value as string, `${p.value as string}${MAX_CHAR}`);
        break;
      case 'contains':
        text += ` AND instr(${col}, ?) > 0`;
        params.push(p.value as string);
        break;
      case 'in': {
        const values = p.value as readonly string[];
        text += ` AND ${col} IN (${values.map(() => '?').join(', ')})`;
        params.push(...values);
        break;
      }
      case 'below':
        text += ` AND (${col} = ? OR substr(${col}, 1, ?) = ?)`;
        params.push(p.value as string, (p.value as string).length + 1, `${p.value as string}/`);
        break;
    }
  }
  return { text, params };
}

/** SELECT of the matching page, ordered by the sort keys and then id, `count + 1` rows to detect a next page. */
export function searchSql(query: SearchQuery): Sql {
  const where = whereSql(query.type, query.where, aliases());
  const { versions, index, pid } = tablesOf(query.type);
  const keys = query.sort.map((k, n) => `${sortKeySql(k, index, pid)} AS k${n}`);
  const params: SqlValue[] = [];
  for (const k of query.sort) if (k.param !== ID_PARAM) for (const p of sortParams(k)) params.push(query.type, p);
  params.push(...where.params);
  const backwards = query.cursor?.direction === 'previous';
  const inner = `SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.deleted, r.body${keys.map((k) => `, ${k}`).join('')} FROM ${versions} r WHERE ${where.text}`;
  let text = `SELECT * FROM (${inner}) m`;
  if (query.cursor) {
    const ks = keysetSql(query.sort, query.cursor);
    text += ` WHERE ${ks.text}`;
    params.push(...ks.params);
  }
  const order = query.sort.flatMap((k, n) => {
    const desc = k.descending !== backwards;
    return [`(k${n} IS NULL)${backwards ? ' DESC' : ''}`, `k${n}${desc ? ' DESC' : ''}`];
  });
  order.push(`id${backwards ? ' DESC' : ''}`);
  text += ` ORDER BY ${order.join(', ')} LIMIT ?`;
  params.push(query.count + 1);
  return { text, params };
}

function sortKeySql(k: SortKey, index: string, pid: string): string {
  if (k.param === ID_PARAM) return k.field === 'code' ? 'r.id' : 'NULL';
  const agg = k.descending ? 'MAX' : 'MIN';
  const params = sortParams(k);
  const pids = params.length > 1 ? ` IN (${params.map(() => pid).join(', ')})` : ` = ${pid}`;
  return `(SELECT ${agg}(s.${k.field}) FROM ${index} s WHERE s.rid = r.rid AND s.pid${pids})`;
}

/**
 * Rows strictly after (or before) the cursor in the sort order: a lexicographic comparison over
 * (k IS NULL, k) per key and then id, where nulls always sort last.
 */
function keysetSql(sort: readonly SortKey[], cursor: Cursor): Sql {
  const backwards = cursor.direction === 'previous';
  const comps: { expr: string; desc: boolean; value: SqlValue }[] = [];
  sort.forEach((k, n) => {
    const v = cursor.values[n] ?? null;
    comps.push({ expr: `(k${n} IS NULL)`, desc: false, value: v === null ? 1 : 0 });
    comps.push({ expr: `k${n}`, desc: k.descending, value: v });
  });
  comps.push({ expr: 'id', desc: false, value: cursor.id });
  const ors: string[] = [];
  const params: SqlValue[] = [];
  comps.forEach((c, n) => {
    const ands: string[] = [];
    for (let j = 0; j < n; j++) {
      ands.push(`${comps[j].expr} IS ?`);
      params.push(comps[j].value);
    }
    const after = c.desc !== backwards ? '<' : '>';
    ands.push(`${c.expr} ${after} ?`);
    params.push(c.value);
    ors.push(`(${ands.join(' AND ')})`);
  });
  return { text: `(${ors.join(' OR ')})`, params };
}

export function countSql(query: SearchQuery): Sql {
  const where = whereSql(query.type, query.where, aliases());
  return { text: `SELECT COUNT(*) AS n FROM ${tablesOf(query.type).versions} r WHERE ${where.text}`, params: where.params };
}
