/** Runs `fn` over `items` with at most `limit` in flight; the first failure stops new work and rejects. */
export async function forEachConcurrent<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        await fn(items[index] as T);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}

/**
 * A wake-up for loops that wait on state others change. `version` counts the notifications: a loop
 * reads it before looking at the state, and `wait(seen)` then resolves at once if anything was
 * notified since, so a change made while the loop was busy is never slept through.
 */
export class Signal {
  private wake: (() => void) | undefined;
  private next: Promise<void> | undefined;
  private count = 0;

  get version(): number {
    return this.count;
  }

  wait(seen?: number): Promise<void> {
    if (seen !== undefined && seen !== this.count) return Promise.resolve();
    this.next ??= new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    return this.next;
  }

  notify(): void {
    this.count += 1;
    const wake = this.wake;
    this.wake = undefined;
    this.next = undefined;
    wake?.();
  }
}

/**
 * Items handed from a producer to a consumer as they become known, in order. The producer pushes
 * and finally closes; the consumer takes what has arrived. Everything ever pushed is remembered
 * (`pushed`), so the consumer can tell later which items came this way.
 */
export class Feed<T> {
  private readonly queue: T[] = [];
  private head = 0;
  private isClosed = false;
  private isFinished = false;
  readonly pushed: T[] = [];
  /** Notified on every push and on close. */
  readonly changed = new Signal();

  push(item: T): void {
    if (this.isClosed) throw new Error('push to a closed feed');
    this.queue.push(item);
    this.pushed.push(item);
    this.changed.notify();
  }

  close(): void {
    this.isClosed = true;
    this.changed.notify();
  }

  /** The producer says it will push no more; the feed stays open for what the consumer adds. */
  finish(): void {
    this.isFinished = true;
    this.changed.notify();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Nothing more will come from the producer: closed, or finished. */
  get finished(): boolean {
    return this.isFinished || this.isClosed;
  }

  /** Items pushed and not yet taken. */
  get size(): number {
    return this.queue.length - this.head;
  }

  /** Up to `max` of the waiting items, oldest first. */
  take(max: number): T[] {
    const taken = this.queue.slice(this.head, this.head + max);
    this.head += taken.length;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return taken;
  }
}
