import { describe, expect, it } from 'vitest';
import type { AuditFacts } from '../../src/audit/audit-event.ts';
import { AuditSink } from '../../src/audit/audit-sink.ts';

const facts = (requestId: string): AuditFacts => ({
  requestId,
  recorded: new Date('2026-11-30T12:00:00Z'),
  interaction: 'read',
  status: 200,
  entities: [],
  patients: [],
  server: { baseUrl: 'http://127.0.0.1/fhir', name: 'Hearth' },
});

/** A writer whose commits the test completes by hand, in any order it likes. */
function manualWriter() {
  const calls: { ids: string[]; commit: (seq: number) => void; fail: (err: Error) => void }[] = [];
  const write = (batch: readonly AuditFacts[]) =>
    new Promise<number | undefined>((resolve, reject) => calls.push({ ids: batch.map((f) => f.requestId), commit: resolve, fail: reject }));
  return { calls, write };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('the audit sink (group commit)', () => {
  it('hands facts recorded in one turn to the writer as one batch, and the next batch before the first has committed', async () => {
    const w = manualWriter();
    const heard: number[] = [];
    const sink = new AuditSink(w.write, (seq) => heard.push(seq));
    const settled: string[] = [];
    const record = (id: string) => sink.recordFacts(facts(id)).then(() => settled.push(id));
    const first = [record('a'), record('b')];
    await turn();
    expect(w.calls.map((c) => c.ids)).toEqual([['a', 'b']]);
    const second = record('c');
    await turn();
    // The writer has the second batch while the first is still on its way to disk.
    expect(w.calls.map((c) => c.ids)).toEqual([['a', 'b'], ['c']]);
    expect(settled).toEqual([]);
    w.calls[0].commit(2);
    await Promise.all(first);
    expect(settled).toEqual(['a', 'b']);
    w.calls[1].commit(3);
    await second;
    expect(settled).toEqual(['a', 'b', 'c']);
    expect(heard).toEqual([2, 3]);
  });

  it('fails only the callers of the batch whose commit failed', async () => {
    const w = manualWriter();
    const sink = new AuditSink(w.write);
    const a = sink.recordFacts(facts('a'));
    await turn();
    const b = sink.recordFacts(facts('b'));
    await turn();
    w.calls[0].fail(new Error('disk full'));
    w.calls[1].commit(1);
    await expect(a).rejects.toThrow('disk full');
    await expect(b).resolves.toBeUndefined();
  });

  it('drain waits for every batch recorded before it, the one not yet handed over included', async () => {
    const w = manualWriter();
    const sink = new AuditSink(w.write);
    let committed = 0;
    void sink.recordFacts(facts('a')).then(() => committed++);
    let drained = false;
    const draining = sink.drain().then(() => (drained = true));
    await turn();
    await turn();
    expect(drained).toBe(false);
    void sink.recordFacts(facts('b')).then(() => committed++);
    await turn();
    expect(w.calls.map((c) => c.ids)).toEqual([['a'], ['b']]);
    w.calls[0].commit(1);
    await turn();
    expect(drained).toBe(false);
    w.calls[1].commit(2);
    await draining;
    expect(committed).toBe(2);
  });
});
