import type { DatabaseSync } from 'node:sqlite';

/**
 * Runs `work` in one transaction that holds the write lock from its start: commit, or roll back
 * and rethrow. On a connection with other files attached, BEGIN IMMEDIATE would take every
 * file's write lock; `lock`, a write statement that changes nothing (`UPDATE f.t SET c = c
 * WHERE 0`), takes the lock of its own file only, before anything is read.
 * See: https://www.sqlite.org/lang_transaction.html (a write statement starts a write transaction)
 */
export function immediate<T>(db: DatabaseSync, work: () => T, lock?: string): T {
  db.exec(lock ? `BEGIN; ${lock};` : 'BEGIN IMMEDIATE');
  try {
    const result = work();
    db.exec('COMMIT');
    return result;
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}
