import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The layers of src/ and the only directions in which they may import (docs/architecture.md).
// `fhir/` and `config/` are the bottom: everything may use them, they use nothing of ours.
const ALLOWED: Record<string, readonly string[]> = {
  fhir: [],
  config: [],
  crypto: ['fhir', 'config'],
  auth: ['fhir', 'config'],
  authserver: ['fhir', 'config', 'auth'],
  audit: ['fhir', 'config', 'crypto', 'auth'],
  store: ['fhir', 'config', 'crypto', 'audit'],
  rest: ['fhir', 'config', 'auth', 'audit', 'store'],
  http: ['fhir', 'config', 'auth', 'authserver', 'audit', 'rest', 'store'],
  cli: ['fhir', 'config', 'auth', 'authserver', 'audit', 'crypto', 'store', '(root)'],
  types: ['fhir', 'auth', 'audit', 'http', 'rest'],
  '(root)': ['fhir', 'config', 'auth', 'authserver', 'audit', 'crypto', 'store', 'rest', 'http'],
};
// Adapters are named only by the composition root (and by their own folder).
const ADAPTER = /^store\/sqlite\//;
// The composition root, and its part that opens the configured storage (store/open.ts: split out so
// that an operator command's threads load it alone).
const MAY_NAME_ADAPTERS = new Set(['compose.ts', 'store/open.ts']);

const SRC = resolve(new URL('../../src', import.meta.url).pathname);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const layerOf = (rel: string) => (rel.includes('/') ? rel.split('/')[0] : '(root)');
const name = (layer: string) => (layer === '(root)' ? 'root' : layer);

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    out.push(relative(SRC, resolve(dirname(file), m[1])));
  }
  return out;
}

describe('layer directions', () => {
  const all = files(SRC).map((f) => ({ file: f, rel: relative(SRC, f) }));

  it('every import in src/ follows an allowed direction', () => {
    const wrong: string[] = [];
    for (const { file, rel } of all) {
      const from = layerOf(rel);
      for (const target of imports(file)) {
        const to = layerOf(target);
        if (to === from) continue;
        if (!(ALLOWED[from] ?? []).includes(to)) wrong.push(`${rel} → ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('only the composition root names a storage adapter', () => {
    const wrong: string[] = [];
    for (const { file, rel } of all) {
      if (ADAPTER.test(rel) || MAY_NAME_ADAPTERS.has(rel)) continue;
      for (const target of imports(file)) if (ADAPTER.test(target)) wrong.push(`${rel} → ${target}`);
    }
    expect(wrong).toEqual([]);
  });

  it('the interaction layer knows nothing of Fastify', () => {
    const wrong = all.filter(({ rel, file }) => rel.startsWith('rest/') && /from\s+'fastify'|from\s+'@fastify\//.test(readFileSync(file, 'utf8')));
    expect(wrong.map((w) => w.rel)).toEqual([]);
  });

  it('draws docs/architecture.md\'s layer diagram from the imports as they are', () => {
    const actual = new Set<string>();
    for (const { file, rel } of all) {
      const from = layerOf(rel);
      for (const target of imports(file)) {
        const to = layerOf(target);
        if (to !== from && to !== 'fhir' && to !== 'config' && from !== 'types') actual.add(`${name(from)} --> ${name(to)}`);
      }
    }
    const doc = readFileSync(new URL('../../docs/architecture.md', import.meta.url), 'utf8');
    const block = /```mermaid\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    const drawn = new Set([...block.matchAll(/^\s+(\w+) --> (\w+)$/gm)].map((m) => `${m[1]} --> ${m[2]}`));
    expect([...drawn].sort()).toEqual([...actual].sort());
  });

  it('knows every layer it meets', () => {
    expect(all.map(({ rel }) => layerOf(rel)).filter((l) => !(l in ALLOWED))).toEqual([]);
  });
});
