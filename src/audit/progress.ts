interface Waiter {
  readonly target: number;
  readonly resolve: (caught: boolean) => void;
}

/**
 * How far the audit log is committed and how far its searchable copy is indexed, as this process
 * knows it; and the wait that gives auditors read-after-write: a search sees at least every event
 * committed before it began.
 */
export class AuditProgress {
  #committed: number;
  #indexed: number;
  #waiters: Waiter[] = [];
  #behind: () => void;

  /** `behind` is asked to index now when a reader has to wait (the indexer may be idle). */
  constructor(committed = 0, indexed = 0, behind: () => void = () => undefined) {
    this.#committed = committed;
    this.#indexed = indexed;
    this.#behind = behind;
  }

  get committed(): number {
    return this.#committed;
  }

  get indexed(): number {
    return this.#indexed;
  }

  /** events committed to the log and not yet searchable */
  get lag(): number {
    return Math.max(0, this.#committed - this.#indexed);
  }

  commit(seq: number): void {
    if (seq > this.#committed) this.#committed = seq;
  }

  index(seq: number): void {
    if (seq <= this.#indexed) return;
    this.#indexed = seq;
    this.commit(seq);
    const still: Waiter[] = [];
    for (const w of this.#waiters) {
      if (w.target <= seq) w.resolve(true);
      else still.push(w);
    }
    this.#waiters = still;
  }

  /** Resolves true once everything committed so far is indexed, false after `timeoutMs` if it is not. */
  caughtUp(timeoutMs: number): Promise<boolean> {
    const target = this.#committed;
    if (this.#indexed >= target) return Promise.resolve(true);
    this.#behind();
    // An indexer in place catches up within the call.
    if (this.#indexed >= target) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      const waiter = {
        target,
        resolve: (caught: boolean) => {
          clearTimeout(timer);
          resolve(caught);
        },
      };
      this.#waiters.push(waiter);
    });
  }
}
