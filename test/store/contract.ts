import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EntryPredicate, IndexEntry, SearchQuery } from '../../src/fhir/query.ts';
import type { CommitOp, Prepare, ResourceStore } from '../../src/store/resource-store.ts';

/**
 * The ResourceStore contract: every adapter runs these tests unchanged. Index entries are written
 * by hand here so that the store is tested without the FHIR layer.
 */
export function storeContract(
  name: string,
  open: (clock: () => Date) => Promise<{ store: ResourceStore; reopen?: () => Promise<ResourceStore> }>,
) {
  describe(`ResourceStore contract: ${name}`, () => {
    let store: ResourceStore;
    let reopen: (() => Promise<ResourceStore>) | undefined;
    beforeEach(async () => {
      // Every call moves the clock by one second, so versions never share an instant.
      let t = Date.parse('2026-01-01T00:00:00Z');
      const opened = await open(() => {
        t += 1000;
        return new Date(t);
      });
      store = opened.store;
      reopen = opened.reopen;
    });
    afterEach(async () => {
      await store.close();
    });

    const doc =
      (body: Record<string, unknown>, index: (id: string) => IndexEntry[] = () => []): Prepare =>
        (v) => ({
          resource: {
            resourceType: 'Patient',
            ...body,
            id: v.id,
            meta: { versionId: String(v.versionId), lastUpdated: v.lastUpdated },
          },
          index: [{ param: '_id', grp: 0, code: v.id }, ...index(v.id)],
        });
    const family = (name: string) =>
      doc({ name: [{ family: name }] }, () => [{ param: 'family', grp: 0, code: name.toLowerCase(), text: name }]);
    const q = (where: SearchQuery['where'], extra: Partial<SearchQuery> = {}): SearchQuery => ({
      type: 'Patient',
      where,
      sort: [],
      count: 100,
      total: 'accurate',
      ...extra,
    });
    const fam = (v: string): SearchQuery['where'][number] => ({
      kind: 'exists',
      param: 'family',
      where: [{ field: 'code', op: 'eq', value: v }],
    });

    it('creates version 1 with a server id and reads it back', async () => {
      const r = await store.create('Patient', family('Smith'));
      expect(r.outcome).toBe('created');
      expect(r.version.versionId).toBe(1);
      expect(r.version.id).toMatch(/^[A-Za-z0-9\-.]{1,64}$/);
      const read = await store.read('Patient', r.version.id);
      expect(read?.resource).toEqual(r.version.resource);
      expect(read?.deleted).toBe(false);
      expect(await store.read('Patient', 'nope')).toBeUndefined();
      expect(await store.read('Observation', r.version.id)).toBeUndefined();
    });

    it('updates into a new version, keeping the old one readable', async () => {
      const { version } = await store.create('Patient', family('Smith'));
      const u = await store.update('Patient', { id: version.id }, family('Jones'), { allowCreate: false });
      expect(u.outcome).toBe('updated');
      expect(u.version.versionId).toBe(2);
      expect((await store.vread('Patient', version.id, 1))?.resource?.name).toEqual([{ family: 'Smith' }]);
      expect((await store.read('Patient', version.id))?.versionId).toBe(2);
      expect((await store.search(q([fam('smith')]))).matches).toHaveLength(0);
      expect((await store.search(q([fam('jones')]))).matches.map((m) => m.id)).toEqual([version.id]);
    });

    // Adapters report storage-level failures (StoreError), which one mapper turns into 412/404.
    it('refuses a stale If-Match as a version conflict and writes nothing', async () => {
      const { version } = await store.create('Patient', family('Smith'));
      await expect(
        store.update('Patient', { id: version.id }, family('Jones'), { ifMatch: 2, allowCreate: false }),
      ).rejects.toMatchObject({
        failure: { kind: 'version-conflict', type: 'Patient', id: version.id, ifMatch: 2 },
      });
      expect((await store.read('Patient', version.id))?.versionId).toBe(1);
      const ok = await store.update('Patient', { id: version.id }, family('Jones'), { ifMatch: 1, allowCreate: false });
      expect(ok.version.versionId).toBe(2);
    });

    it('creates with a client id only when allowed', async () => {
      await expect(
        store.update('Patient', { id: 'client-1' }, family('A'), { allowCreate: false }),
      ).rejects.toMatchObject({ failure: { kind: 'not-found', type: 'Patient', id: 'client-1' } });
      const r = await store.update('Patient', { id: 'client-1' }, family('A'), { allowCreate: true });
      expect(r.outcome).toBe('created');
      expect(r.version.id).toBe('client-1');
    });

    it('remembers which request wrote each version, tombstones included, and only what committed', async () => {
      const tagged = (writeId: string, prepare: Prepare): Prepare => (v) => ({ ...prepare(v), writeId });
      const c = await store.create('Patient', tagged('req-1', family('A')));
      await store.update('Patient', { id: c.version.id }, tagged('req-2', family('B')), { allowCreate: false });
      await store.delete('Patient', c.version.id, undefined, 'req-3');
      await expect(store.create('Patient', tagged('req-4', () => {
        throw new Error('prepare failed');
      }))).rejects.toThrow('prepare failed');
      expect(await store.writtenBy('req-1')).toEqual([{ type: 'Patient', id: c.version.id, versionId: 1, deleted: false, writeId: 'req-1' }]);
      expect(await store.writtenBy('req-2')).toEqual([{ type: 'Patient', id: c.version.id, versionId: 2, deleted: false, writeId: 'req-2' }]);
      expect(await store.writtenBy('req-3')).toEqual([{ type: 'Patient', id: c.version.id, versionId: 3, deleted: true, writeId: 'req-3' }]);
      expect(await store.writtenBy('req-4')).toEqual([]);
    });

    it('commits a transaction\'s versions all together, or none when one expectation no longer holds', async () => {
      const a = await store.create('Patient', family('Alpha'));
      const b = await store.create('Patient', family('Beta'));
      const at = '2026-02-01T00:00:00.000Z';
      const put = (id: string, expect: number | undefined, name: string, writeId: string): CommitOp => {
        const { resource, index } = family(name)({ id, versionId: (expect ?? 0) + 1, lastUpdated: at });
        return { type: 'Patient', id, expect, versionId: (expect ?? 0) + 1, lastUpdated: at, content: { resource, index }, writeId };
      };
      const gone: CommitOp = { type: 'Patient', id: b.version.id, expect: 1, versionId: 2, lastUpdated: at, writeId: 'tx-1' };
      // the second op expects a version that is not current: nothing of the transaction is written
      await expect(store.commit([put('tx-new', undefined, 'Gamma', 'tx-0'), put(a.version.id, 2, 'Stale', 'tx-0')])).rejects.toMatchObject({
        failure: { kind: 'changed', type: 'Patient', id: a.version.id },
      });
      expect(await store.read('Patient', 'tx-new')).toBeUndefined();
      expect(await store.writtenBy('tx-0')).toEqual([]);
      // a create under criteria that now match something: refused too
      await expect(store.commit([{ ...put('tx-new', undefined, 'Gamma', 'tx-0'), absent: q([fam('alpha')]) }])).rejects.toMatchObject({ failure: { kind: 'changed' } });
      expect(await store.read('Patient', 'tx-new')).toBeUndefined();
      await store.commit([put('tx-new', undefined, 'Gamma', 'tx-1'), put(a.version.id, 1, 'Alphonse', 'tx-1'), gone, { ...put('tx-c', undefined, 'Delta', 'tx-1'), absent: q([fam('delta')]) }]);
      expect((await store.read('Patient', 'tx-new'))?.resource?.name).toEqual([{ family: 'Gamma' }]);
      expect((await store.read('Patient', a.version.id))).toMatchObject({ versionId: 2, lastUpdated: at });
      expect((await store.read('Patient', b.version.id))).toMatchObject({ versionId: 2, deleted: true });
      expect((await store.search(q([fam('alphonse')]))).matches.map((m) => m.id)).toEqual([a.version.id]);
      expect((await store.search(q([fam('beta')]))).matches).toHaveLength(0);
      expect((await store.writtenBy('tx-1')).map((w) => `${w.id}/${w.versionId}${w.deleted ? ' deleted' : ''}`).sort()).toEqual(
        [`${a.version.id}/2`, `${b.version.id}/2 deleted`, 'tx-c/1', 'tx-new/1'].sort(),
      );
      // a request's entries (`<id>.<index>`) are its writes too; other ids that start alike are not
      await store.commit([put('tx-e1', undefined, 'Eps', 'tx-3.0'), put('tx-e2', undefined, 'Zeta', 'tx-3.12'), put('tx-e3', undefined, 'Eta', 'tx-3.x'), put('tx-e4', undefined, 'Theta', 'tx-30')]);
      expect((await store.writtenBy('tx-3')).map((w) => `${w.id} ${w.writeId}`).sort()).toEqual(['tx-e1 tx-3.0', 'tx-e2 tx-3.12']);
      expect((await store.writtenBy('tx-3.12')).map((w) => w.id)).toEqual(['tx-e2']);
      // a create of an id that now exists is refused as changed
      await expect(store.commit([put('tx-new', undefined, 'Again', 'tx-2')])).rejects.toMatchObject({ failure: { kind: 'changed', id: 'tx-new' } });
    });

    it('rolls back when prepare throws', async () => {
      const { version } = await store.create('Patient', family('Smith'));
      const boom: Prepare = () => {
        throw new Error('boom');
      };
      await expect(store.update('Patient', { id: version.id }, boom, { allowCreate: false })).rejects.toThrow('boom');
      await expect(store.create('Patient', boom)).rejects.toThrow('boom');
      expect((await store.read('Patient', version.id))?.versionId).toBe(1);
      expect((await store.search(q([]))).total).toBe(1);
    });

    it('deletes as a tombstone version, removable from search, idempotent', async () => {
      const { version } = await store.create('Patient', family('Smith'));
      const t = await store.delete('Patient', version.id);
      expect(t).toMatchObject({ versionId: 2, deleted: true });
      expect(await store.read('Patient', version.id)).toMatchObject({
        versionId: 2,
        deleted: true,
        resource: undefined,
      });
      expect(await store.delete('Patient', version.id)).toBeUndefined();
      expect((await store.search(q([]))).total).toBe(0);
      const again = await store.update('Patient', { id: version.id }, family('Back'), { allowCreate: true });
      expect(again).toMatchObject({ outcome: 'created', version: { versionId: 3 } });
    });

    it('keeps history newest first, with since and paging', async () => {
      const { version } = await store.create('Patient', family('A'));
      await store.update('Patient', { id: version.id }, family('B'), { allowCreate: false });
      await store.delete('Patient', version.id);
      await store.create('Patient', family('C'));
      const h = await store.history({ type: 'Patient', id: version.id, count: 2 });
      expect(h.total).toBe(3);
      expect(h.versions.map((v) => v.versionId)).toEqual([3, 2]);
      const rest = await store.history({ type: 'Patient', id: version.id, count: 2, after: h.next });
      expect(rest.versions.map((v) => v.versionId)).toEqual([1]);
      expect(rest.next).toBeUndefined();
      const all = await store.history({ type: 'Patient', count: 10 });
      expect(all.total).toBe(4);
      const since = await store.history({ type: 'Patient', count: 10, since: all.versions[0].lastUpdated });
      expect(since.versions).toHaveLength(1);
    });

    it('conditional create returns the one match, refuses several', async () => {
      const a = await store.create('Patient', family('Smith'));
      const again = await store.create('Patient', family('Smith'), q([fam('smith')]));
      expect(again.outcome).toBe('exists');
      expect(again.version.id).toBe(a.version.id);
      await store.create('Patient', family('Smith'));
      await expect(store.create('Patient', family('Smith'), q([fam('smith')]))).rejects.toMatchObject({ failure: { kind: 'multiple-matches' } });
      expect((await store.search(q([fam('smith')]))).total).toBe(2);
    });

    it('conditional update creates, updates the one match, refuses several', async () => {
      const c = await store.update('Patient', { query: q([fam('x')]) }, family('X'), { allowCreate: true });
      expect(c.outcome).toBe('created');
      const u = await store.update('Patient', { query: q([fam('x')]) }, family('X'), { allowCreate: true });
      expect(u).toMatchObject({ outcome: 'updated', version: { id: c.version.id, versionId: 2 } });
      await store.create('Patient', family('X'));
      await expect(
        store.update('Patient', { query: q([fam('x')]) }, family('X'), { allowCreate: true }),
      ).rejects.toMatchObject({ failure: { kind: 'multiple-matches' } });
    });

    it('answers every clause kind', async () => {
      const a = await store.create(
        'Patient',
        doc({}, () => [
          { param: 'family', grp: 0, code: 'smith', text: 'Smith' },
          { param: 'birthdate', grp: 0, lo: 100, hi: 200 },
          { param: 'cv$0', grp: 1, sys: 's', code: 'x' },
          { param: 'cv$1', grp: 1, lo: 5, hi: 5 },
          { param: 'cv$0', grp: 2, sys: 's', code: 'y' },
          { param: 'cv$1', grp: 2, lo: 9, hi: 9 },
        ]),
      );
      const b = await store.create(
        'Patient',
        doc({}, () => [{ param: 'family', grp: 0, code: 'smythe', text: 'Smythe' }]),
      );
      const o = await store.create('Observation', (v) => ({
        resource: { resourceType: 'Observation', id: v.id },
        index: [{ param: 'subject', grp: 0, code: `Patient/${a.version.id}` }],
      }));
      const find = async (where: SearchQuery['where'], type = 'Patient') =>
        (await store.search({ ...q(where), type })).matches.map((m) => m.id).sort();
      const both = [a.version.id, b.version.id].sort();
      expect(
        await find([{ kind: 'exists', param: 'family', where: [{ field: 'code', op: 'prefix', value: 'sm' }] }]),
      ).toEqual(both);
      expect(
        await find([{ kind: 'exists', param: 'family', where: [{ field: 'code', op: 'contains', value: 'yth' }] }]),
      ).toEqual([b.version.id]);
      expect(
        await find([{ kind: 'exists', param: 'family', where: [{ field: 'text', op: 'eq', value: 'Smith' }] }]),
      ).toEqual([a.version.id]);
      expect(
        await find([
          { kind: 'exists', param: 'family', where: [{ field: 'code', op: 'in', value: ['smith', 'smythe'] }] },
        ]),
      ).toEqual(both);
      expect(
        await find([
          {
            kind: 'exists',
            param: 'birthdate',
            where: [
              { field: 'lo', op: 'ge', value: 100 },
              { field: 'hi', op: 'le', value: 200 },
            ],
          },
        ]),
      ).toEqual([a.version.id]);
      expect(await find([{ kind: 'not', clause: { kind: 'exists', param: 'birthdate', where: [] } }])).toEqual([
        b.version.id,
      ]);
      expect(await find([{ kind: 'or', any: [fam('smith'), fam('smythe')] }])).toEqual(both);
      // composite: the code and the value must come from the same group
      const cv = (code: string, value: number) => [
        {
          kind: 'composite' as const,
          param: 'cv',
          components: [
            [{ field: 'code' as const, op: 'eq' as const, value: code }],
            [{ field: 'lo' as const, op: 'eq' as const, value }],
          ],
        },
      ];
      expect(await find(cv('x', 5))).toEqual([a.version.id]);
      expect(await find(cv('x', 9))).toEqual([]);
      expect(
        await find([{ kind: 'chain', param: 'subject', targetType: 'Patient', where: [fam('smith')] }], 'Observation'),
      ).toEqual([o.version.id]);
      expect(
        await find([{ kind: 'chain', param: 'subject', targetType: 'Patient', where: [fam('smythe')] }], 'Observation'),
      ).toEqual([]);
    });

    it('pages with a keyset cursor that stays correct while data changes', async () => {
      const names = ['d', 'b', 'e', 'a', 'c'];
      for (const n of names) await store.create('Patient', family(n));
      const sort = [{ param: 'family', descending: false, field: 'code' as const }];
      const p1 = await store.search(q([], { sort, count: 2 }));
      const fams = (p: typeof p1) =>
        p.matches.map((m) => (m.resource as { name: { family: string }[] }).name[0].family);
      expect(fams(p1)).toEqual(['a', 'b']);
      expect(p1.hasNext).toBe(true);
      expect(p1.hasPrevious).toBe(false);
      // a row inserted before the cursor does not shift the next page
      await store.create('Patient', family('aa'));
      const last = p1.matches.length - 1;
      const p2 = await store.search(
        q([], { sort, count: 2, cursor: { direction: 'next', id: p1.matches[last].id, values: p1.keys[last] } }),
      );
      expect(fams(p2)).toEqual(['c', 'd']);
      const p3 = await store.search(
        q([], { sort, count: 2, cursor: { direction: 'next', id: p2.matches[1].id, values: p2.keys[1] } }),
      );
      expect(fams(p3)).toEqual(['e']);
      expect(p3.hasNext).toBe(false);
      const back = await store.search(
        q([], { sort, count: 2, cursor: { direction: 'previous', id: p2.matches[0].id, values: p2.keys[0] } }),
      );
      expect(fams(back)).toEqual(['aa', 'b']);
      const desc = await store.search(q([], { sort: [{ ...sort[0], descending: true }], count: 3 }));
      expect(fams(desc)).toEqual(['e', 'd', 'c']);
    });

    it('sorts missing values last in both directions', async () => {
      const none = await store.create('Patient', doc({}));
      await store.create('Patient', family('m'));
      for (const descending of [false, true]) {
        const p = await store.search(q([], { sort: [{ param: 'family', descending, field: 'code' }] }));
        expect(p.matches[p.matches.length - 1].id).toBe(none.version.id);
      }
    });

    it('keeps data across a restart', async () => {
      if (!reopen) return;
      const { version } = await store.create('Patient', family('Durable'));
      await store.close();
      store = await reopen();
      expect((await store.read('Patient', version.id))?.resource?.name).toEqual([{ family: 'Durable' }]);
      expect((await store.search(q([fam('durable')]))).total).toBe(1);
    });

    it('answers _id as its one entry (the id as code, nothing else) would: each comparison, :missing, :not, with other clauses, sorted and paged', async () => {
      // (the SQLite adapter stores no entry for _id and answers it from the row: sqlite-schema.ts ID_PARAM)
      const made: string[] = [];
      for (const name of ['Able', 'Baker', 'Able', 'Cole']) made.push((await store.create('Patient', family(name))).version.id);
      const gone = (await store.create('Patient', family('Gone'))).version.id;
      await store.delete('Patient', gone);
      const id = (...where: EntryPredicate[]): SearchQuery['where'][number] => ({ kind: 'exists', param: '_id', where });
      const found = async (where: SearchQuery['where'], extra: Partial<SearchQuery> = {}) => (await store.search(q(where, extra))).matches.map((m) => m.id);
      const sorted = [...made].sort();
      expect(await found([id({ field: 'code', op: 'eq', value: made[1] })])).toEqual([made[1]]);
      expect(await found([id({ field: 'code', op: 'eq', value: gone })])).toEqual([]);
      expect((await found([id({ field: 'code', op: 'in', value: [made[0], made[3], 'nope'] })])).sort()).toEqual([made[0], made[3]].sort());
      // `|id` (no system) matches; `system|id` and :text (no display) do not.
      expect(await found([id({ field: 'sys', op: 'null' }, { field: 'code', op: 'eq', value: made[2] })])).toEqual([made[2]]);
      expect(await found([id({ field: 'sys', op: 'eq', value: 'urn:x' }, { field: 'code', op: 'eq', value: made[2] })])).toEqual([]);
      expect(await found([id({ field: 'text', op: 'prefix', value: made[2].slice(0, 4) })])).toEqual([]);
      expect(await found([{ kind: 'not', clause: id({ field: 'code', op: 'eq', value: made[0] }) }], { sort: [{ param: '_id', field: 'code', descending: false }] })).toEqual(
        sorted.filter((x) => x !== made[0]),
      );
      expect(await found([id()], { sort: [{ param: '_id', field: 'code', descending: false }] })).toEqual(sorted);
      expect(await found([{ kind: 'not', clause: id() }])).toEqual([]);
      expect(await found([id({ field: 'code', op: 'eq', value: made[2] }), fam('able')])).toEqual([made[2]]);
      expect(await found([id({ field: 'code', op: 'eq', value: made[1] }), fam('able')])).toEqual([]);
      expect(await found([fam('able'), { kind: 'or', any: [id({ field: 'code', op: 'eq', value: made[0] }), id({ field: 'code', op: 'eq', value: made[1] })] }])).toEqual([made[0]]);
      // Sorted by _id descending, two a page, forward and back.
      const sort = [{ param: '_id', field: 'code' as const, descending: true }];
      const p1 = await store.search(q([], { sort, count: 2 }));
      expect(p1.matches.map((m) => m.id)).toEqual([sorted[3], sorted[2]]);
      expect(p1.keys).toEqual([[sorted[3]], [sorted[2]]]);
      const p2 = await store.search(q([], { sort, count: 2, cursor: { direction: 'next', id: sorted[2], values: [sorted[2]] } }));
      expect(p2.matches.map((m) => m.id)).toEqual([sorted[1], sorted[0]]);
      const back = await store.search(q([], { sort, count: 2, cursor: { direction: 'previous', id: sorted[1], values: [sorted[1]] } }));
      expect(back.matches.map((m) => m.id)).toEqual([sorted[3], sorted[2]]);
    });
  });
}
