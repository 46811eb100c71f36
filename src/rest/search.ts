import type { BundleLink } from 'fhir/r4.js';
import { historyBundle, searchsetBundle } from '../fhir/bundles.ts';
import { badRequest } from '../fhir/errors.ts';
import { encodeCursor, parseSearch } from '../fhir/search-parser.ts';
import { dateRange } from '../fhir/search-values.ts';
import { parseSubset } from '../fhir/subsetting.ts';
import { parsePrefer } from './headers.ts';
import { checkSearchable, onlyParams } from './params.ts';
import { type Interaction, noteVersion, type RestContext, type RestRequest, type RestResult } from './request.ts';
import { shaper } from './shape.ts';

const HISTORY_PARAMS = new Set(['_count', '_since', '_cursor', '_format', '_pretty', '_elements', '_summary']);

/** See: https://hl7.org/fhir/R4/http.html#search (GET, and POST _search with a form body) */
export const search: Interaction = async (ctx, req) => {
  const { model, repository, clock } = ctx;
  const base = ctx.baseUrl;
  const type = req.type;
  const typeModel = repository.typeModel(type);
  const pairs = [...req.query, ...req.form()];
  const subset = parseSubset(typeModel, pairs);
  const prefer = parsePrefer(req.header('prefer'));
  const search = parseSearch(model, type, pairs, {
    defaultCount: ctx.search.defaultCount,
    maxCount: ctx.search.maxCount,
    strict: prefer.handling === 'strict',
    baseUrl: base,
    clock,
  });
  checkSearchable(req.access, model, search);
  const countOnly = subset.kind === 'summary' && subset.mode === 'count';
  const query = countOnly ? { ...search.query, count: 0, total: 'accurate' as const } : search.query;
  const result = await repository.search({ ...search, query }, req.access);
  // See: BALP Query — the query as received (URL and form parameters) and what it returned.
  req.audit.query = new URLSearchParams(pairs).toString();
  for (const v of result.matches) noteVersion(req.audit, v);
  for (const v of result.included) noteVersion(req.audit, v);
  const links: BundleLink[] = [];
  const self = new URLSearchParams(search.linkParams as [string, string][]);
  self.set('_count', String(query.count));
  const url = (p: URLSearchParams) => `${base}/${type}?${p.toString()}`;
  const current = new URLSearchParams(self);
  const raw = pairs.find(([k]) => k === '_cursor');
  if (raw) current.set('_cursor', raw[1]);
  links.push({ relation: 'self', url: url(current) });
  if (!countOnly && result.hasNext && result.matches.length > 0) {
    const last = result.matches[result.matches.length - 1];
    const p = new URLSearchParams(self);
    p.set('_cursor', encodeCursor({ direction: 'next', id: last.id, values: result.keys[result.keys.length - 1] }));
    links.push({ relation: 'next', url: url(p) });
  }
  if (!countOnly && result.hasPrevious && result.matches.length > 0) {
    const p = new URLSearchParams(self);
    p.set('_cursor', encodeCursor({ direction: 'previous', id: result.matches[0].id, values: result.keys[0] }));
    links.push({ relation: 'previous', url: url(p) });
  }
  const bundle = searchsetBundle({
    baseUrl: base,
    matches: result.matches,
    included: result.included,
    links,
    total: result.total,
    warnings: search.ignored,
    shape: shaper(repository, req.access, type, subset),
    includeShape: (v) => shaper(repository, req.access, v.type, { kind: 'none' })(v),
    now: clock(),
    omitEntries: countOnly,
  });
  return { status: 200, resource: bundle };
};

/** See: https://hl7.org/fhir/R4/http.html#history (instance and type history, _since, _count) */
export const history: Interaction = async (ctx, req) => historyOf(ctx, req, req.id);

async function historyOf(ctx: RestContext, req: RestRequest, id: string | undefined): Promise<RestResult> {
  const { repository, clock } = ctx;
  const base = ctx.baseUrl;
  const type = req.type;
  const typeModel = repository.typeModel(type);
  onlyParams(req, HISTORY_PARAMS);
  const subset = parseSubset(typeModel, req.query);
  const one = (name: string) => {
    const values = req.query.filter(([k]) => k === name).map(([, v]) => v);
    if (values.length > 1) throw badRequest('HEARTH_HISTORY_PARAM', `${name} may appear only once`);
    return values[0];
  };
  const countRaw = one('_count');
  if (countRaw !== undefined && !/^[0-9]{1,9}$/.test(countRaw)) {
    throw badRequest('HEARTH_HISTORY_PARAM', `_count must be a non-negative whole number, got "${countRaw}"`);
  }
  const count = Math.min(countRaw === undefined ? ctx.search.defaultCount : Number(countRaw), ctx.search.maxCount);
  const since = one('_since');
  // _since is an instant: a time zone is required.
  if (since !== undefined && (!/T.*(Z|[+-]\d\d:\d\d)$/.test(since) || !dateRange(since))) {
    throw badRequest('HEARTH_HISTORY_PARAM', `_since must be an instant with a time zone, got "${since.slice(0, 40)}"`);
  }
  const cursor = one('_cursor');
  if (cursor !== undefined && !/^[1-9][0-9]{0,15}$/.test(cursor)) {
    throw badRequest('HEARTH_HISTORY_PARAM', '_cursor is not a cursor issued by this server');
  }
  const page = await repository.history(
    type,
    id,
    {
      since: since === undefined ? undefined : new Date(dateRange(since)?.lo ?? 0).toISOString(),
      count,
      after: cursor === undefined ? undefined : Number(cursor),
    },
    req.access,
  );
  for (const v of page.versions) noteVersion(req.audit, v);
  const path = `${base}/${type}${id ? `/${id}` : ''}/_history`;
  const params = new URLSearchParams(req.query.filter(([k]) => k !== '_cursor'));
  params.set('_count', String(count));
  // The request as it was asked: no dangling `?` when it had no parameters.
  const asked = new URLSearchParams(req.query).toString();
  const links: BundleLink[] = [{ relation: 'self', url: asked ? `${path}?${asked}` : path }];
  if (page.next !== undefined) {
    params.set('_cursor', String(page.next));
    links.push({ relation: 'next', url: `${path}?${params.toString()}` });
  }
  const bundle = historyBundle({
    baseUrl: base,
    versions: page.versions,
    links,
    total: page.total,
    shape: shaper(repository, req.access, type, subset),
    now: clock(),
  });
  return { status: 200, resource: bundle };
}
