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

  advances.sort(
    (a, b) =>
      kind.bornAt(a.resource).getTime() - kind.bornAt(b.resource).getTime() ||
      kind.id(a.resource).localeCompare(kind.id(b.resource)),
  );
  const limit = kind.cap;
  moves.push(...advances.slice(0, limit));
  return {
    moves,
    scheduled,
    deferred: advances.slice(limit),
    cap: { limit, eligible: advances.length, capped: advances.length > limit },
  };
}
