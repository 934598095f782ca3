/**
 * The bounded queue in front of the compute worker. A prediction takes a slot when its request
 * arrives (before its body is read), so that at most `depth + 1` request bodies are held at once;
 * with no slot free the request is answered 429 at once with Retry-After. Tasks of admitted
 * requests run one at a time, in arrival order (the compute worker runs one call at a time anyway).
 */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
  constructor(
    public readonly retryAfterSeconds: number,
    what = 'prediction queue',
  ) {
    super(`the ${what} is full; retry in ${retryAfterSeconds} s`);
  }
}

export interface Slot {
  /** runs the task after every task started before it; at most one per slot */
  run<T>(task: () => Promise<T>): Promise<T>;
  /** frees the slot (idempotent) */
  release(): void;
}

export class WorkQueue {
  private admitted = 0;
  private running = 0;
  private tail: Promise<unknown> = Promise.resolve();
  /** exponential moving average of task seconds (Retry-After estimate) */
  private avgSeconds = 1;
  private idleWaiters: (() => void)[] = [];

  constructor(public readonly depth: number) {
    if (!Number.isInteger(depth) || depth < 0) throw new Error(`queue depth must be an integer >= 0, got ${depth}`);
  }

  /** requests holding a slot (waiting or being computed) */
  get size(): number {
    return this.admitted;
  }

  get busy(): number {
    return this.running;
  }

  /** seconds until a slot is likely free (1 to 120) */
  retryAfter(): number {
    return Math.min(120, Math.max(1, Math.ceil(this.avgSeconds * Math.max(1, this.admitted))));
  }

  /** a slot, or QueueFullError when `depth + 1` are taken */
  acquire(): Slot {
    if (this.admitted >= this.depth + 1) throw new QueueFullError(this.retryAfter());
    this.admitted++;
    let released = false;
    let task: Promise<unknown> | null = null;
    const free = (): void => {
      this.admitted--;
      if (this.admitted === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    return {
      run: <T>(fn: () => Promise<T>): Promise<T> => {
        if (task) throw new Error('a slot runs one task');
        const p = this.enqueue(fn);
        task = p;
        return p;
      },
      // a slot whose task is queued or running stays taken until the task ends (the bound holds
      // even when clients give up waiting)
      release: () => {
        if (released) return;
        released = true;
        if (task) void task.then(free, free);
        else free();
      },
    };
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const start = async (): Promise<T> => {
      this.running++;
      const t0 = performance.now();
      try {
        return await task();
      } finally {
        this.running--;
        this.avgSeconds = 0.8 * this.avgSeconds + 0.2 * ((performance.now() - t0) / 1000);
      }
    };
    const p = this.tail.then(start, start);
    this.tail = p.catch(() => undefined);
    return p;
  }

  /** resolves when no slot is held */
  idle(): Promise<void> {
    if (this.admitted === 0) return Promise.resolve();
    return new Promise((ok) => this.idleWaiters.push(ok));
  }
}
