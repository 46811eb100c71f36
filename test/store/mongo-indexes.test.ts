import { MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import type { Clause } from '../../src/fhir/query.ts';
import { type ResourceDoc, searchFilter } from '../../src/store/mongo/mongo-query.ts';
import { COLLECTIONS, INDEXES } from '../../src/store/mongo/mongo-schema.ts';
import { mongoTestStorage } from '../helpers/mongo.ts';

const eq = (param: string, value: string, field: 'code' | 'sys' = 'code'): Clause => ({ kind: 'exists', param, where: [{ field, op: 'eq', value }] });
const range = (param: string, lo: number, hi: number): Clause => ({ kind: 'exists', param, where: [{ field: 'lo', op: 'ge', value: lo }, { field: 'hi', op: 'lt', value: hi }] });

/** The searches clinicians and auditors run most. */
const COMMON: [string, string, Clause[]][] = [
  ['by id', 'Patient', [eq('_id', 'p1')]],
  ['by identifier', 'Patient', [eq('identifier', 'MRN-1')]],
  ['subject + code + date', 'Observation', [eq('subject', 'Patient/p1'), eq('code', '4548-4'), range('date', 0, 1e12)]],
  ['_lastUpdated', 'Observation', [range('_lastUpdated', 0, 1e12)]],
  ['AuditEvent by patient + date', 'AuditEvent', [eq('patient', 'Patient/p1'), range('date', 0, 1e12)]],
];

/** The fields a filter constrains with equality or a range, as dotted paths (an $elemMatch's fields under its array). */
function constrained(filter: Record<string, unknown>, prefix = ''): Set<string> {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(filter)) {
    if (k === '$and') for (const f of v as Record<string, unknown>[]) for (const p of constrained(f, prefix)) out.add(p);
    else if (k.startsWith('$')) continue;
    else if (v && typeof v === 'object' && '$elemMatch' in v) for (const p of constrained((v as { $elemMatch: Record<string, unknown> }).$elemMatch, `${prefix}${k}.`)) out.add(p);
    else out.add(`${prefix}${k}`);
  }
  return out;
}

const collectionOf = (type: string) => (type === 'AuditEvent' ? COLLECTIONS.auditIndex : COLLECTIONS.resources);

describe('MongoDB: the common searches are served by an index', () => {
  it.each(COMMON)('%s: an index of its collection leads with fields the filter constrains', async (_name, type, where) => {
    const filter = (await searchFilter(type, where, async () => [])) as Record<string, unknown>;
    const fields = constrained(filter);
    const usable = INDEXES[collectionOf(type)].filter((ix) => Object.keys(ix.key).slice(0, 3).every((f) => fields.has(f)));
    expect(usable.map((ix) => ix.options.name).length, JSON.stringify([...fields])).toBeGreaterThan(0);
  });

  // The wire-protocol test server has no `explain`: against a real server (HEARTH_TEST_MONGODB_URI)
  // the plan itself is checked.
  it.runIf(process.env.HEARTH_TEST_MONGODB_URI !== undefined)('explain: no collection scan for any of them, and the accurate total counted with an index', async () => {
    const storage = await mongoTestStorage();
    const client = new MongoClient(storage.uri);
    try {
      for (const [name, type, where] of COMMON) {
        const filter = await searchFilter(type, where, async () => []);
        const collection = client.db().collection<ResourceDoc>(collectionOf(type));
        const plan = JSON.stringify(await collection.find(filter).sort({ type: 1, deleted: 1, id: 1 }).limit(21).explain('queryPlanner'));
        expect(plan, name).not.toContain('COLLSCAN');
        const count = JSON.stringify(await client.db().command({ explain: { count: collectionOf(type), query: filter as object }, verbosity: 'queryPlanner' }));
        expect(count, name).not.toContain('COLLSCAN');
      }
    } finally {
      await client.close();
      await storage.close();
    }
  });
});
