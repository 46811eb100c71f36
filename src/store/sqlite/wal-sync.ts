import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';

/** Flushes a file's data to stable storage (fs.fdatasync; tests pass their own to hold or fail it). */
export type Fdatasync = (fd: number) => Promise<void>;

const fdatasyncAsync: Fdatasync = (fd) => new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
const NOTHING_PENDING = Promise.resolve();

/** A caller waiting for the commits up to `through` to be on disk. */
interface Waiter {
  readonly through: number;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * Group commit of hearth.db's write-ahead log, off the request thread. The resource database
 * commits with `synchronous=NORMAL`: a COMMIT appends its frames to `hearth.db-wal` and returns
 * without an fsync. This flushes that file with `fdatasync` on libuv's thread pool, and a write
 * is answered only once a flush that began after its COMMIT has finished: it is on disk before
 * its response and before its audit outcome, as with `synchronous=FULL`, but the request thread
 * runs other requests meanwhile, and one flush covers every commit made before it began.
 *
 * Why a flush of the WAL file makes the commit durable: in WAL mode a transaction is committed
 * once its frames, the last marked as a commit, are in the WAL; recovery replays the frames whose
 * checksums hold, up to the last commit frame. SQLite with `synchronous=NORMAL` flushes the WAL
 * before every checkpoint and the database file after it, so what a checkpoint moves into
 * hearth.db was already on disk. `fsync` and `fdatasync` act on the file, not on the descriptor
 * they are given, so this descriptor of its own flushes what SQLite's wrote.
 * See: https://www.sqlite.org/wal.html and https://www.sqlite.org/pragma.html#pragma_synchronous
 *
 * Reads wait too (`durable()` after they run): a response never shows data that a power loss
 * could still take back. A flush that fails leaves what it covered in doubt (the kernel may have
 * dropped the pages it could not write): every later wait fails too, and the server answers no
 * more until it is restarted and recovers from the files as they are (the audit log's open
 * attempts are reconciled then).
 */
export class WalSync {
  readonly #path: string;
  readonly #flush: Fdatasync;
  #fd: number | undefined;
  /** commits counted so far, and how many of them are known to be on disk */
  #committed = 0;
  #durable = 0;
  #flushing = false;
  #failed: Error | undefined;
  #waiting: Waiter[] = [];

  /** `path`: the WAL file (`hearth.db-wal`). */
  constructor(path: string, flush: Fdatasync = fdatasyncAsync) {
    this.#path = path;
    this.#flush = flush;
  }

  /** Counts a COMMIT that has just returned. */
  committed(): void {
    this.#committed++;
  }

  /** Resolves once every commit counted so far is on disk; rejects when a flush has failed. */
  durable(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#durable === this.#committed) return NOTHING_PENDING;
    const through = this.#committed;
    const waited = new Promise<void>((resolve, reject) => this.#waiting.push({ through, resolve, reject }));
    this.#start();
    return waited;
  }

  /** Flushes at once on the calling thread (maintenance: start-up, key rotation's batches). */
  flushNow(): void {
    this.check();
    const through = this.#committed;
    try {
      fdatasyncSync(this.#descriptor());
    } catch (err) {
      this.#fail(err);
      throw this.#failed;
    }
    this.#settle(through);
  }

  /** Throws if a flush has failed (readiness). */
  check(): void {
    if (this.#failed) throw this.#failed;
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** One flush at a time; the commits made while one runs wait for the next. */
  #start(): void {
    if (this.#flushing || this.#failed) return;
    this.#flushing = true;
    const through = this.#committed;
    let flushed: Promise<void>;
    try {
      flushed = this.#flush(this.#descriptor());
    } catch (err) {
      flushed = Promise.reject(err);
    }
    flushed.then(
      () => {
        this.#flushing = false;
        this.#settle(through);
        if (this.#waiting.length > 0) this.#start();
      },
      (err: unknown) => {
        this.#flushing = false;
        this.#fail(err);
      },
    );
  }

  #settle(through: number): void {
    if (through > this.#durable) this.#durable = through;
    const still: Waiter[] = [];
    for (const w of this.#waiting) {
      if (w.through <= this.#durable) w.resolve();
      else still.push(w);
    }
    this.#waiting = still;
  }

  #fail(err: unknown): void {
    const code = (err as { code?: string }).code;
    this.#failed = new Error(`hearth.db: flushing the write-ahead log to disk failed${code ? ` (${code})` : ''}; writes since the last flush may not be on disk: restart the server`);
    for (const w of this.#waiting) w.reject(this.#failed);
    this.#waiting = [];
  }

  #descriptor(): number {
    this.#fd ??= openSync(this.#path, 'r');
    return this.#fd;
  }
}
