import { parseIfMatch } from './headers.ts';
import { onlyParams } from './params.ts';
import { type Interaction, noteRef, noteVersion } from './request.ts';

/** See: https://hl7.org/fhir/R4/http.html#delete (deleting an already deleted resource succeeds) */
export const remove: Interaction = async ({ repository }, req) => {
  const { type, access } = req;
  const id = req.id!;
  onlyParams(req, new Set());
  const ifMatch = parseIfMatch(req.header('if-match'));
  const { tombstone, before, latest } = await repository.delete(type, id, access, ifMatch, req.writeAhead);
  if (tombstone) {
    // Before and after, as references; the version before names the patients touched.
    if (before) noteVersion(req.audit, before, 'before');
    noteRef(req.audit, `${type}/${id}/_history/${tombstone.versionId}`, 'after');
  }
  return { status: 204, etag: latest.versionId };
};
