import type { Access } from '../auth/authorize.ts';
import type { FhirModel } from '../fhir/definitions.ts';
import { badRequest, FhirError } from '../fhir/errors.ts';
import { type Clause, type SearchQuery, sortParams } from '../fhir/query.ts';
import { type ParsedSearch, parseSearch } from '../fhir/search-parser.ts';
import type { RestContext, RestRequest } from './request.ts';

export const READ_PARAMS: ReadonlySet<string> = new Set(['_format', '_pretty', '_elements', '_summary']);

export function onlyParams(req: Pick<RestRequest, 'query'>, allowed: ReadonlySet<string>): void {
  const bad = req.query.find(([k]) => !allowed.has(k));
  if (bad) throw badRequest('HEARTH_UNKNOWN_PARAM', `parameter ${bad[0]} is not supported on this interaction`);
}

export function notSupported(what: string, type: string, allow?: string): FhirError {
  return new FhirError(
    'HEARTH_NOT_ALLOWED',
    { code: 'not-supported', diagnostics: `${what} is not supported for ${type}` },
    allow === undefined ? {} : { allow },
  );
}

/** The criteria of a conditional write (`If-None-Exist`, conditional update) as a store query. */
export function criteriaFromPairs(ctx: RestContext, req: RestRequest, pairs: [string, string][], what: string): SearchQuery {
  const bad = pairs.find(([k]) => k.startsWith('_') && !['_id', '_lastUpdated', '_tag', '_profile'].includes(k));
  if (bad) throw badRequest('HEARTH_BAD_CRITERIA', `${what} criteria cannot use ${bad[0]}`);
  const options = { defaultCount: 2, maxCount: 2, strict: true, baseUrl: ctx.baseUrl, clock: ctx.clock };
  const search = parseSearch(ctx.model, req.type, pairs, options);
  checkSearchable(req.access, ctx.model, search);
  return search.query;
}

/**
 * What a token may not see it may not search, sort or include on either, so that a hidden element
 * cannot be inferred through filters (billing cannot search value-quantity; a patient cannot
 * filter its accounting of disclosures by address or token).
 */
export function checkSearchable(access: Access, model: FhirModel, search: ParsedSearch): void {
  // `asked`: the parameter as the request named it, where `code`'s entries answer it.
  const check = (type: string, code: string, asked = code) => {
    if (access.searchable(type, code)) return;
    const def = model.types.get(type)?.params.get(code.split(/[:$.]/)[0]);
    const mask = access.mask(type);
    const hidden = mask ? (def?.elements ?? []).find((e) => e !== 'id' && e !== 'meta' && !mask.has(e)) : undefined;
    throw new FhirError('HEARTH_MASKED_PARAMETER', {
      code: 'forbidden',
      diagnostics: hidden
        ? `search parameter ${asked} reads ${type}.${hidden}, which this role may not see`
        : `search parameter ${asked} reads ${type} elements that this token's view leaves out`,
    });
  };
  const walk = (type: string, c: Clause): void => {
    switch (c.kind) {
      case 'exists':
      case 'composite':
        return check(type, c.param, c.asked);
      case 'chain':
        check(type, c.param);
        for (const w of c.where) walk(c.targetType, w);
        return;
      case 'or':
        for (const w of c.any) walk(type, w);
        return;
      case 'and':
        for (const w of c.all) walk(type, w);
        return;
      case 'not':
        return walk(type, c.clause);
    }
  };
  for (const c of search.query.where) walk(search.query.type, c);
  for (const k of search.query.sort) for (const param of sortParams(k)) check(search.query.type, param, k.asked);
  for (const i of search.includes) check(i.sourceType, i.param);
  for (const i of search.revIncludes) check(i.sourceType, i.param);
}
