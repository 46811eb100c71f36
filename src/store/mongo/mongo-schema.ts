// The MongoDB adapter's document layout: its collections and the indexes each query needs, made
// at start (idempotently) and by `hearth mongo init`. See docs/mongodb.md for the reasons.
//
// - resources: one document per resource (the current version, or its tombstone): `_id`
//   "Type/id", the stored body (protected elements already ciphertext), and its search index as
//   an array of typed entries (`ix`, multikey-indexed) plus composite groups (`cx`).
// - audit_index: the searchable copy of the audit log the indexer keeps behind it, in the same
//   shape (entries, no body: the body is read from the log), apart from the resources so that
//   clinical writes never touch the collection that grows with every request.
// - resource_versions: every version ever written, `_id` "Type/id/version" (a second writer of
//   the same version collides on it: how a lost race is detected), with the request that wrote it.
// - write_claims: conditional creates and updates insert a claim named by their criteria, so
//   that two racing for the same criteria collide instead of both creating.
// - audit_log: the hash chain, `_id` = sequence number (a second instance appending the same
//   sequence collides: one linear chain serialised by the database), canonical JSON bodies.
// - audit_checkpoints, audit_purges: signed heads and retention purges, append-only.
// - marks: how far the audit log is indexed.
import type { CreateIndexesOptions, IndexSpecification } from 'mongodb';

export const COLLECTIONS = {
  resources: 'resources',
  auditIndex: 'audit_index',
  versions: 'resource_versions',
  claims: 'write_claims',
  auditLog: 'audit_log',
  checkpoints: 'audit_checkpoints',
  purges: 'audit_purges',
  marks: 'marks',
} as const;

export type CollectionName = (typeof COLLECTIONS)[keyof typeof COLLECTIONS];

export interface IndexDef {
  readonly key: IndexSpecification & Record<string, 1 | -1>;
  readonly options: CreateIndexesOptions & { name: string };
}

/** The indexes of a collection searched like resources (resources, and the audit log's searchable copy). */
const SEARCHABLE: readonly IndexDef[] = [
  // Search in id order (the default order, and the keyset cursor's tie-break).
  { key: { type: 1, deleted: 1, id: 1 }, options: { name: 'type_id' } },
  // Token, string, reference, uri equality and prefixes: param then code.
  { key: { type: 1, 'ix.param': 1, 'ix.code': 1 }, options: { name: 'ix_code' } },
  // Dates, numbers, quantities: param then the low bound.
  { key: { type: 1, 'ix.param': 1, 'ix.lo': 1 }, options: { name: 'ix_lo' } },
  // Composite parameters by their first component's code.
  { key: { type: 1, 'cx.param': 1, 'cx.c0.code': 1 }, options: { name: 'cx_code' } },
  { key: { type: 1, at: 1 }, options: { name: 'type_at' } },
];

/** Every index the adapter's queries rely on, by collection. */
export const INDEXES: Record<CollectionName, readonly IndexDef[]> = {
  resources: SEARCHABLE,
  audit_index: SEARCHABLE,
  resource_versions: [
    { key: { type: 1, id: 1, v: -1 }, options: { name: 'instance_history' } },
    { key: { type: 1, ord: -1 }, options: { name: 'type_history' } },
    { key: { writeId: 1 }, options: { name: 'write_id', sparse: true } },
    { key: { kek: 1 }, options: { name: 'kek', sparse: true } },
  ],
  write_claims: [],
  audit_log: [
    { key: { id: 1, searchable: 1 }, options: { name: 'event_id' } },
    { key: { recorded: 1 }, options: { name: 'recorded' } },
  ],
  audit_checkpoints: [],
  audit_purges: [],
  marks: [],
};
