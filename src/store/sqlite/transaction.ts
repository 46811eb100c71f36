import type { DatabaseSync } from 'node:sqlite';

/** Runs `work` in one IMMEDIATE transaction (the write lock taken at the start): commit, or roll back and rethrow. */
export function immediate<T>(db: DatabaseSync, work: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = work();
    db.exec('COMMIT');
    return result;
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}
