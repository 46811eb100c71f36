import { readFileSync } from 'node:fs';
import { type Grant, type Permission, parseScope } from './scopes.ts';

export interface Role {
  readonly name: string;
  readonly ceiling: readonly Grant[];
  /** per type, the top-level elements this role may see; absent type = unmasked */
  readonly elements: ReadonlyMap<string, ReadonlySet<string>>;
  /** may read the whole audit trail and its reports even where clinical access is restricted */
  readonly audit: boolean;
}

export type Roles = ReadonlyMap<string, Role>;

/** Loads profiles/roles.json; a malformed ceiling scope stops the server rather than widening anything. */
export function loadRoles(path = new URL('../../profiles/roles.json', import.meta.url)): Roles {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as {
    roles: Record<string, { ceiling: string[]; elements?: Record<string, string[]>; audit?: boolean }>;
  };
  const roles = new Map<string, Role>();
  for (const [name, r] of Object.entries(raw.roles)) {
    const ceiling = r.ceiling.map((s) => {
      const g = parseScope(s);
      if (!g || g.filter) throw new Error(`profiles/roles.json: role ${name} has an invalid ceiling scope "${s}"`);
      return g;
    });
    const elements = new Map(Object.entries(r.elements ?? {}).map(([t, list]) => [t, new Set(list)]));
    if (r.audit !== undefined && typeof r.audit !== 'boolean') throw new Error(`profiles/roles.json: role ${name} has a non-boolean audit`);
    roles.set(name, { name, ceiling, elements, audit: r.audit ?? false });
  }
  return roles;
}

/** Each grant narrowed to what some ceiling scope of the role allows (same context, type, permissions). */
export function applyCeiling(grants: readonly Grant[], role: Role): Grant[] {
  const out: Grant[] = [];
  for (const g of grants) {
    for (const c of role.ceiling) {
      if (c.context !== g.context) continue;
      if (c.type !== '*' && g.type !== '*' && c.type !== g.type) continue;
      const permissions = new Set<Permission>([...g.permissions].filter((p) => c.permissions.has(p)));
      if (permissions.size === 0) continue;
      out.push({ ...g, type: g.type === '*' ? c.type : g.type, permissions });
    }
  }
  return out;
}
