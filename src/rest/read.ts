import { parseSubset } from '../fhir/subsetting.ts';
import { notModified } from './headers.ts';
import { onlyParams, READ_PARAMS } from './params.ts';
import { type Interaction, noteVersion, versionOf } from './request.ts';
import { shaper } from './shape.ts';

/** See: https://hl7.org/fhir/R4/http.html#read */
export const read: Interaction = async ({ repository }, req) => {
  const subset = parseSubset(repository.typeModel(req.type), req.query);
  onlyParams(req, READ_PARAMS);
  const v = await repository.read(req.type, req.id!, req.access);
  noteVersion(req.audit, v);
  if (notModified(req.header('if-none-match'), req.header('if-modified-since'), v.versionId, v.lastUpdated)) return { status: 304, ...versionOf(v) };
  return { status: 200, resource: shaper(repository, req.access, req.type, subset)(v), ...versionOf(v) };
};

/** See: https://hl7.org/fhir/R4/http.html#vread */
export const vread: Interaction = async ({ repository }, req) => {
  const subset = parseSubset(repository.typeModel(req.type), req.query);
  onlyParams(req, READ_PARAMS);
  const v = await repository.vread(req.type, req.id!, Number(req.vid), req.access);
  noteVersion(req.audit, v);
  if (notModified(req.header('if-none-match'), req.header('if-modified-since'), v.versionId, v.lastUpdated)) return { status: 304, ...versionOf(v) };
  return { status: 200, resource: shaper(repository, req.access, req.type, subset)(v), ...versionOf(v) };
};
