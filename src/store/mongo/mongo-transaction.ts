import { randomInt } from 'node:crypto';
import { type ClientSession, type MongoClient, MongoServerError, type TransactionOptions } from 'mongodb';

/**
 * Durable writes (an acknowledged write survives the loss of the primary): every transaction
 * commits with majority write concern and the journal; reads inside it see one snapshot.
 */
export const DURABLE: TransactionOptions = {
  readConcern: { level: 'snapshot' },
  writeConcern: { w: 'majority', j: true },
  readPreference: 'primary',
};

/** A transaction that lost to a concurrent one: a duplicate key or a write conflict. */
export function lostRace(err: unknown): boolean {
  return err instanceof MongoServerError && (err.code === 11000 || err.code === 112 || err.hasErrorLabel('TransientTransactionError'));
}

export interface Transactions {
  readonly client: MongoClient;
  /** false on a standalone server (development only): the steps of a write are applied one by one */
  readonly enabled: boolean;
}

/**
 * Runs `work` in a durable transaction and commits it; when it lost a race to a concurrent writer,
 * `lost` decides: throw (the caller's answer, e.g. a version conflict) or return to try anew.
 */
export async function inTransaction<T>(
  tx: Transactions,
  work: (session: ClientSession) => Promise<T>,
  lost: (err: unknown, attempt: number) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const session = tx.client.startSession();
    try {
      if (tx.enabled) session.startTransaction(DURABLE);
      const result = await work(session);
      if (tx.enabled) await session.commitTransaction();
      return result;
    } catch (err) {
      if (session.inTransaction()) await session.abortTransaction().catch(() => undefined);
      if (!lostRace(err)) throw err;
      lost(err, attempt);
      await new Promise((r) => setTimeout(r, randomInt(1, 3 + attempt * 3)));
    } finally {
      await session.endSession();
    }
  }
}

/**
 * Runs the writes of one key one after another in this process. Two requests of one instance
 * writing the same resource (or the same conditional criteria) then never race each other in the
 * database: no write-conflict retries, and the second sees the first's outcome. Writers on other
 * instances are still decided by the database (duplicate keys, write conflicts).
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    const result = before.then(work, work);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}
