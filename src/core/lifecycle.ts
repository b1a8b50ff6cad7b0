import { MARKED_AT_TAG, type Policy } from '../config/policy.ts';
import { DAY_MS } from '../rules/types.ts';

/**
 * The one staged lifecycle every kind of resource goes through: mark → optional steps → remove,
 * unmark when no longer eligible, the cap applied oldest first. A kind contributes a description
 * (its id, its age, its steps and what removes it); the walk through the stages, the due dates and
 * the cap are written here once. Plain data in, plain data out: no AWS, no clock.
 */

/** An optional stage between the grace period and the removal, e.g. disabling an image. */
export interface LifecycleStep {
  /** The action kind that carries the step out, e.g. `disable` or `archive`. */
  kind: string;
  /** Tag recording when this janitor did the step; it also says the step is ours to undo. */
  doneTag: string;
  /** Days to wait after the step before the next stage; infinite when nothing follows. */
  waitDays: number;
}

export interface KindLifecycle<R> {
  id(resource: R): string;
  /** Oldest first under the cap, so a capped run makes the most valuable progress. */
  bornAt(resource: R): Date;
  tags(resource: R): Readonly<Record<string, string>>;
  graceDays: number;
  steps: readonly LifecycleStep[];
  /**
   * Whether the resource is already in the state a step puts it in (disabled, archived) without
   * this janitor having done it: the step is then skipped, and never undone by an unmark.
   */
  alreadyDone?(resource: R, step: LifecycleStep): boolean;
  /** The action kind that removes the resource, or undefined when the lifecycle ends at its last step. */
  remove: string | undefined;
  /** The most advances (steps and removals) one run may make. */
  cap: number;
  /**
   * Keep verdicts that keep the mark: the resource is still on its way out, its fate is only
   * undecided (not owned any more, not reached this run, its use elsewhere not yet known).
   */
  holdsMark(rule: string): boolean;
}

export interface LifecycleSubject<R> {
  resource: R;
  /** `go`: eligible for removal (an image's expire, a snapshot's orphan). */
  verdict: 'keep' | 'go';
  rule: string;
}

export type Move<R> =
  | { move: 'mark'; resource: R; removeAfter: Date; dueAt: Date }
  | { move: 'unmark'; resource: R; markedAt: Date | undefined; undo: LifecycleStep[] }
  | { move: 'advance'; kind: string; resource: R; markedAt: Date | undefined; step?: LifecycleStep }
  | { move: 'scheduled'; resource: R; dueAt: Date; markedAt: Date; next: string };

export interface LifecyclePlan<R> {
  /** Unmarks and marks; advances within the cap, oldest first. */
  moves: Move<R>[];
  scheduled: Extract<Move<R>, { move: 'scheduled' }>[];
  /** Advances held back by the cap. */
  deferred: Extract<Move<R>, { move: 'advance' }>[];
  cap: { limit: number; eligible: number; capped: boolean };
}

export function parseMarkedAt(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}

export function addDays(date: Date, days: number): Date {
  return new Date(date.getTime() + days * DAY_MS);
}

/** The smaller of the absolute cap and the percentage of the inventory, when one is set. */
export function removalLimit(
  policy: Pick<Policy, 'maxRemovalsPerRun' | 'maxRemovalsPercent'>,
  inventorySize: number,
) {
  const { maxRemovalsPerRun, maxRemovalsPercent } = policy;
  if (maxRemovalsPercent === null) return maxRemovalsPerRun;
  return Math.min(maxRemovalsPerRun, Math.floor((inventorySize * maxRemovalsPercent) / 100));
}

type Stage =
  | { at: 'unmarked' }
  | { at: 'waiting'; dueAt: Date; markedAt: Date; next: string }
  | { at: 'due'; kind: string; markedAt: Date | undefined; step?: LifecycleStep }
  | { at: 'done' };

/** Where an eligible resource stands: which stage is next, and whether it is due yet. */
function stageOf<R>(kind: KindLifecycle<R>, resource: R, now: Date): Stage {
  const tags = kind.tags(resource);
  const markedAt = parseMarkedAt(tags[MARKED_AT_TAG]);
  if (markedAt === undefined && kind.graceDays > 0) return { at: 'unmarked' };
  let dueAt = markedAt === undefined ? now : addDays(markedAt, kind.graceDays);
  for (const step of kind.steps) {
    const doneAt =
      parseMarkedAt(tags[step.doneTag]) ?? (kind.alreadyDone?.(resource, step) ? dueAt : undefined);
    if (doneAt === undefined) {
      if (dueAt.getTime() > now.getTime())
        return { at: 'waiting', dueAt, markedAt: markedAt ?? now, next: step.kind };
      return { at: 'due', kind: step.kind, markedAt, step };
    }
    dueAt = addDays(doneAt, step.waitDays);
  }
  if (kind.remove === undefined) return { at: 'done' };
  if (!Number.isFinite(dueAt.getTime()) || dueAt.getTime() > now.getTime()) {
    return Number.isFinite(dueAt.getTime())
      ? { at: 'waiting', dueAt, markedAt: markedAt ?? now, next: kind.remove }
      : { at: 'done' };
  }
  return { at: 'due', kind: kind.remove, markedAt };
}

/** Whether this run would advance an eligible resource (a step or its removal), before the cap. */
export function advanceDue<R>(kind: KindLifecycle<R>, resource: R, now: Date): boolean {
  return stageOf(kind, resource, now).at === 'due';
}

/** The advance this run makes of an eligible resource when one is due, before the cap. */
export function dueAdvance<R>(
  kind: KindLifecycle<R>,
  resource: R,
  now: Date,
): Extract<Move<R>, { move: 'advance' }> | undefined {
  const stage = stageOf(kind, resource, now);
  if (stage.at !== 'due') return undefined;
  return {
    move: 'advance',
    kind: stage.kind,
    resource,
    markedAt: stage.markedAt,
    ...(stage.step ? { step: stage.step } : {}),
  };
}

/** The order the cap takes advances in: oldest first, ties by id. */
export function capOrder<R>(kind: KindLifecycle<R>): (a: R, b: R) => number {
  return (a, b) =>
    kind.bornAt(a).getTime() - kind.bornAt(b).getTime() || kind.id(a).localeCompare(kind.id(b));
}

/**
 * Lets advances start before every resource is decided without changing which ones the cap
 * selects. The plan takes the first `cap` of the due resources that still go once decided, in cap
 * order; facts read later (references, sharing) can only keep a resource, never make one due. So,
 * given every resource whose advance is due before those facts, the gate releases one that goes as
 * soon as it is certain to be among the selected: at once while all the due ones fit in the cap,
 * otherwise in cap order, once every due resource before it is decided.
 */
export class CapGate<R> {
  private readonly order: R[];
  private readonly position = new Map<string, number>();
  private readonly decided = new Map<number, boolean>();
  private next = 0;
  private count = 0;
  /** Every due resource fits in the cap: each is released as soon as it is decided. */
  readonly fits: boolean;

  private readonly kind: KindLifecycle<R>;

  constructor(kind: KindLifecycle<R>, due: readonly R[]) {
    this.kind = kind;
    this.order = [...due].sort(capOrder(kind));
    for (const [index, resource] of this.order.entries()) this.position.set(kind.id(resource), index);
    this.fits = this.order.length <= kind.cap;
  }

  /** How many have been released. */
  get released(): number {
    return this.count;
  }

  /** Nothing more will be released: every due resource is decided, or the cap is reached. */
  get complete(): boolean {
    return this.decided.size === this.order.length || this.count >= this.kind.cap;
  }

  /** Records whether a resource goes, once its decision is final; returns those this releases. */
  settle(resource: R, goes: boolean): R[] {
    const index = this.position.get(this.kind.id(resource));
    if (index === undefined || this.decided.has(index)) return [];
    this.decided.set(index, goes);
    if (this.fits) {
      if (!goes) return [];
      this.count += 1;
      return [this.order[index] as R];
    }
    const out: R[] = [];
    while (this.next < this.order.length && this.decided.has(this.next)) {
      if (this.decided.get(this.next) === true && this.count < this.kind.cap) {
        out.push(this.order[this.next] as R);
        this.count += 1;
      }
      this.next += 1;
    }
    return out;
  }
}

/** Days from the mark to the last stage, for the date a mark announces; a step nothing follows adds none. */
function daysToRemoval<R>(kind: KindLifecycle<R>): number {
  return kind.steps.reduce(
    (days, step) => days + (Number.isFinite(step.waitDays) ? step.waitDays : 0),
    kind.graceDays,
  );
}

export function planLifecycle<R>(
  kind: KindLifecycle<R>,
  subjects: readonly LifecycleSubject<R>[],
  now: Date,
): LifecyclePlan<R> {
  const moves: Move<R>[] = [];
  const scheduled: LifecyclePlan<R>['scheduled'] = [];
  const advances: Extract<Move<R>, { move: 'advance' }>[] = [];

  for (const { resource, verdict, rule } of subjects) {
    const tags = kind.tags(resource);
    if (verdict === 'keep') {
      if (tags[MARKED_AT_TAG] !== undefined && !kind.holdsMark(rule)) {
        moves.push({
          move: 'unmark',
          resource,
          markedAt: parseMarkedAt(tags[MARKED_AT_TAG]),
          undo: kind.steps.filter((step) => tags[step.doneTag] !== undefined),
        });
      }
      continue;
    }
    const stage = stageOf(kind, resource, now);
    if (stage.at === 'unmarked') {
      moves.push({
        move: 'mark',
        resource,
        removeAfter: addDays(now, daysToRemoval(kind)),
        dueAt: addDays(now, kind.graceDays),
      });
    } else if (stage.at === 'waiting') {
      scheduled.push({ move: 'scheduled', resource, ...stage });
    } else if (stage.at === 'due') {
      advances.push({
        move: 'advance',
        kind: stage.kind,
        resource,
        markedAt: stage.markedAt,
        ...(stage.step ? { step: stage.step } : {}),
      });
    }
  }

  const order = capOrder(kind);
  advances.sort((a, b) => order(a.resource, b.resource));
  const limit = kind.cap;
  moves.push(...advances.slice(0, limit));
  return {
    moves,
    scheduled,
    deferred: advances.slice(limit),
    cap: { limit, eligible: advances.length, capped: advances.length > limit },
  };
}
