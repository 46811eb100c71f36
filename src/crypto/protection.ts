import { readFileSync } from 'node:fs';
import type { FhirModel, SearchParamType } from '../fhir/definitions.ts';

/** Which elements of which types are encrypted, and which search parameters therefore need blind indexes. */
export interface ProtectionPolicy {
  /** per type, protected paths: ['name', 'component.value', ...] */
  readonly paths: ReadonlyMap<string, readonly string[]>;
  /** per type, index-entry param (`code`, `code$1`, `code:identifier`) → the parameter type it is blinded as */
  readonly blinded: ReadonlyMap<string, ReadonlyMap<string, SearchParamType>>;
}

export function loadProtectionPolicy(model: FhirModel, path: string | URL = new URL('../../profiles/protection.json', import.meta.url)): ProtectionPolicy {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as { protect: Record<string, string[]> };
  const paths = new Map(Object.entries(raw.protect));
  const blinded = new Map<string, Map<string, SearchParamType>>();
  for (const [type, typeModel] of model.types) {
    const protectedPaths = (paths.get(type) ?? []).map((p) => `${type}.${p}`);
    const reads = (expression: string) =>
      expression.split('|').some((part) => {
        const e = part.trim().replace(/^\(/, '');
        return protectedPaths.some((p) => e === p || (e.startsWith(p) && /^[.\s)]/.test(e.slice(p.length))) || e.startsWith(`${p}.`));
      });
    const m = new Map<string, SearchParamType>();
    for (const def of typeModel.params.values()) {
      if (def.type === 'composite') {
        const bases = def.expression.split('|').map((b) => b.trim());
        def.components?.forEach((c, i) => {
          const full = bases.map((b) => `${b}.${c.expression}`).join(' | ');
          if (reads(full)) m.set(`${def.code}$${i}`, c.type);
        });
        continue;
      }
      if (reads(def.expression)) {
        m.set(def.code, def.type);
        if (def.type === 'reference') m.set(`${def.code}:identifier`, 'token');
      }
    }
    blinded.set(type, m);
  }
  return { paths, blinded };
}
