import type { ProgressEvent, ProgressPhase, ProgressPort } from '../core/ports.ts';

/** A terminal stream: what the progress line writes to, and how wide it may be. */
export interface TerminalStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Back to the start of the line, and the line erased (CSI 2 K). */
const CLEAR_LINE = '\r\u001b[2K';

/** Redraws at most this often: a share check per snapshot would otherwise redraw thousands of times. */
const REDRAW_MS = 100;

const LABELS: Record<ProgressPhase, string> = {
  references: 'references',
  'image-shares': 'image shares',
  'snapshot-shares': 'snapshot shares',
  'image-actions': 'image actions',
  'snapshot-actions': 'snapshot actions',
};

const ORDER: readonly ProgressEvent['phase'][] = [
  'images',
  'snapshots',
  'references',
  'image-shares',
  'snapshot-shares',
  'image-actions',
  'snapshot-actions',
];

/**
 * One line on a terminal, rewritten in place, saying how far the run has got: the inventories as
 * their pages arrive, then done of total for each check and the actions. `clear` erases it and
 * holds it back, and must be called before anything else is written to the same terminal (the
 * results, a prompt); `resume` draws it again. Only counts are printed, never a resource's value.
 */
export class TerminalProgress implements ProgressPort {
  private readonly stream: TerminalStream;
  private readonly redrawMs: number;
  private readonly clock: () => number;
  private readonly latest = new Map<ProgressEvent['phase'], ProgressEvent>();
  private shown = false;
  private held = false;
  private drawnAt = Number.NEGATIVE_INFINITY;
  private pending: ReturnType<typeof setTimeout> | undefined;

  constructor(stream: TerminalStream, options: { redrawMs?: number; clock?: () => number } = {}) {
    this.stream = stream;
    this.redrawMs = options.redrawMs ?? REDRAW_MS;
    this.clock = options.clock ?? Date.now;
  }

  report(event: ProgressEvent): void {
    this.latest.set(event.phase, event);
    if (this.held) return;
    const now = this.clock();
    // A phase that has just finished is drawn at once; other counts wait for the next redraw.
    const finished = 'total' in event && event.done === event.total;
    if (finished || now - this.drawnAt >= this.redrawMs) {
      this.draw(now);
      return;
    }
    this.pending ??= setTimeout(() => this.draw(this.clock()), this.redrawMs - (now - this.drawnAt));
    // A timer left behind must not keep the process alive after the run.
    this.pending.unref?.();
  }

  /** Erases the line and draws no more until `resume`, so what comes next starts on a clean line. */
  clear(): void {
    this.held = true;
    this.cancelPending();
    if (!this.shown) return;
    this.stream.write(CLEAR_LINE);
    this.shown = false;
  }

  /** Draws the line again after `clear`, e.g. once a prompt is answered. */
  resume(): void {
    this.held = false;
    if (this.latest.size > 0) this.draw(this.clock());
  }

  /** The line as it stands, fitted to the terminal's width so it never wraps (a wrapped line cannot be erased). */
  line(): string {
    const parts = ORDER.flatMap((phase) => {
      const event = this.latest.get(phase);
      if (!event) return [];
      if ('listed' in event) {
        // A listing is complete once the phase that reads it has started.
        const next = event.phase === 'images' ? 'references' : 'snapshot-shares';
        const text = `${event.listed.toLocaleString('en-US')} ${event.phase} listed`;
        return [{ text, finished: this.latest.has(next) }];
      }
      const text = `${LABELS[event.phase]} ${event.done}/${event.total}`;
      return [{ text, finished: event.done >= event.total }];
    });
    // A terminal that does not say its width (0 or none) gets the common 80 columns.
    const width = (this.stream.columns || 80) - 1;
    const join = () => parts.map((entry) => entry.text).join(' · ');
    // Too long: finished phases give way, earliest first, so those still under way stay in view.
    for (let index = 0; join().length > width && index < parts.length; ) {
      if (parts[index]?.finished && parts.length > 1) parts.splice(index, 1);
      else index += 1;
    }
    const text = join();
    return text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text;
  }

  private draw(now: number): void {
    this.cancelPending();
    this.drawnAt = now;
    this.stream.write(`${CLEAR_LINE}${this.line()}`);
    this.shown = true;
  }

  private cancelPending(): void {
    if (this.pending !== undefined) clearTimeout(this.pending);
    this.pending = undefined;
  }
}
