import { badRequest, operationOutcome } from '../fhir/errors.ts';
import type { SearchQuery } from '../fhir/query.ts';
import type { WriteResult } from '../store/resource-store.ts';
import { parseIfMatch, parsePrefer } from './headers.ts';
import { criteriaFromPairs, notSupported, onlyParams, READ_PARAMS } from './params.ts';
import { type Interaction, noteRef, noteVersion, type RestContext, type RestRequest, type RestResult, versionOf } from './request.ts';
import { shaper } from './shape.ts';

/** See: https://hl7.org/fhir/R4/http.html#create, and #ccreate for If-None-Exist */
export const create: Interaction = async (ctx, req) => {
  const { repository } = ctx;
  const prefer = parsePrefer(req.header('prefer'));
  onlyParams(req, READ_PARAMS);
  const body = req.body();
  const ifNoneExist = req.header('if-none-exist');
  let condition: SearchQuery | undefined;
  if (ifNoneExist !== undefined) {
    if (!repository.typeModel(req.type).conditionalCreate) throw notSupported('conditional create', req.type);
    const pairs = [...new URLSearchParams(queryOf(ifNoneExist))];
    if (pairs.length === 0) throw badRequest('HEARTH_BAD_HEADER', 'If-None-Exist has no search criteria');
    condition = criteriaFromPairs(ctx, req, pairs, 'If-None-Exist');
  }
  const result = await repository.create(req.type, body, req.access, condition, req.writeAhead);
  return writeResult(ctx, req, result, prefer.return);
};

/** See: https://hl7.org/fhir/R4/http.html#update */
export const update: Interaction = async (ctx, req) => {
  const prefer = parsePrefer(req.header('prefer'));
  onlyParams(req, READ_PARAMS);
  const ifMatch = parseIfMatch(req.header('if-match'));
  const body = req.body();
  const options = { ifMatch, allowCreate: ctx.updateCreate };
  const result = await ctx.repository.update(req.type, { id: req.id! }, body, options, req.access, req.writeAhead);
  return writeResult(ctx, req, result, prefer.return);
};

/** See: https://hl7.org/fhir/R4/http.html#cond-update */
export const conditionalUpdate: Interaction = async (ctx, req) => {
  if (!ctx.repository.typeModel(req.type).conditionalUpdate) throw notSupported('conditional update', req.type);
  const prefer = parsePrefer(req.header('prefer'));
  const ifMatch = parseIfMatch(req.header('if-match'));
  const pairs = req.query.filter(([k]) => !READ_PARAMS.has(k));
  if (pairs.length === 0) throw badRequest('HEARTH_NO_CRITERIA', 'conditional update needs search criteria in the URL');
  const query = criteriaFromPairs(ctx, req, pairs, 'conditional update');
  const body = req.body();
  const result = await ctx.repository.update(req.type, { query }, body, { ifMatch, allowCreate: true }, req.access, req.writeAhead);
  return writeResult(ctx, req, result, prefer.return);
};

/** The answer to a create or update: its versions noted for the audit, and what `Prefer: return` asks for. */
function writeResult(ctx: RestContext, req: RestRequest, result: WriteResult, ret: string): RestResult {
  const v = result.version;
  if (result.outcome === 'exists') noteVersion(req.audit, v);
  else {
    if (v.versionId > 1) noteRef(req.audit, `${v.type}/${v.id}/_history/${v.versionId - 1}`, 'before');
    noteVersion(req.audit, v, 'after');
  }
  const status = result.outcome === 'created' ? 201 : 200;
  const location = result.outcome === 'created' ? `${ctx.baseUrl}/${v.type}/${v.id}/_history/${v.versionId}` : undefined;
  const head = { status, ...versionOf(v), location };
  // See: https://hl7.org/fhir/R4/http.html#ops (Prefer: return)
  if (ret === 'minimal') return head;
  if (ret === 'OperationOutcome') {
    const verb = { created: 'created', updated: 'updated', exists: 'already exists as' }[result.outcome];
    const diagnostics = `${verb} ${v.type}/${v.id}/_history/${v.versionId}`;
    return { ...head, resource: operationOutcome([{ code: 'informational', severity: 'information', diagnostics }]) };
  }
  return { ...head, resource: shaper(ctx.repository, req.access, v.type, { kind: 'none' })(v) };
}

/** `If-None-Exist: Patient?identifier=x` or `identifier=x` → the query part. */
function queryOf(value: string): string {
  const q = value.indexOf('?');
  return q === -1 ? value : value.slice(q + 1);
}
