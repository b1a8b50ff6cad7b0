import { MARKED_AT_TAG, type Policy } from '../config/policy.ts';
import { errorCode, errorMessage } from '../errors.ts';
import type { OutcomeStatus } from '../model.ts';
import { Feed, forEachConcurrent, Signal } from './concurrency.ts';
import type { Deadline, Log } from './ports.ts';

/**
 * The one executor of the lifecycle, for every kind, with the safety rails in one place: dry run;
 * unmarks first of what waits for the whole plan (giving back what someone needs comes before
 * anything else); a fresh re-check of every resource right before it advances, where anything
 * that now protects it wins; tolerant error codes; the time budget, past which nothing new starts
 * and the rest is reported as not reached; the run's change gate; and one failure never stopping
 * the others. Marks and unmarks are tagged in batches (1,000 ids per call) alongside the
 * advances, which draw on other API buckets.
 *
 * Advances go through a pipeline: re-checked 200 at a time, at most about one batch ahead of the
 * calls that carry them out, so what is re-checked is what is about to advance. They may arrive
 * before the plan is complete (a StagedPlan), and each starts as soon as it is re-checked; those
 * go on while the unmarks wait for the plan, since they draw on other API buckets.
 */

export interface ExecuteOptions {
  dryRun: boolean;
  now: Date;
  accountId: string;
  policy: Pick<Policy, 'exemptTag' | 'graceDays'>;
  deadline: Deadline;
  /** Stop starting new actions when less than this much time is left. */
  reserveMs: number;
  log: Log;
  /** Shared by a run's executors: once it is closed, nothing more is changed. */
  changes?: ChangeGate;
}

/**
 * Whether a run has changed anything yet, and a way to make sure it never will. A run whose facts
 * fail before it changed anything can still stop with nothing done; once something has been
 * changed, the run must report it instead.
 */
export class ChangeGate {
  private touched = false;
  private shut = false;

  /** Asked right before each change: false once closed; the first true marks the run as changed. */
  enter(): boolean {
    if (this.shut) return false;
    this.touched = true;
    return true;
  }

  /** Closes the gate if nothing has been changed; returns whether it did. */
  closeIfUntouched(): boolean {
    if (!this.touched) this.shut = true;
    return this.shut;
  }

  get changed(): boolean {
    return this.touched;
  }
}

/**
 * A plan whose advances may start before it is complete. `early` carries advances as each becomes
 * final (one the complete plan holds, within its cap); `plan` resolves with the whole plan, those
 * early advances included, and must not reject once one was pushed. The producer pushes; the
 * executor closes `early` once the plan is complete.
 */
export interface StagedPlan<A> {
  early: Feed<A>;
  plan: Promise<readonly A[]>;
  /** Told each time an advance's outcome is settled, so the producer knows how many are still to go. */
  onSettled?: () => void;
}

export type Phase = 'unmark' | 'mark' | 'advance';

/** What a kind of resource (image, snapshot) contributes to the executor. */
export interface KindExecution<A, O, R, P = never> {
  /** The resource an action is about. */
  id(action: A): string;
  phase(action: A): Phase;
  /** The structured log line: its message and the key the resource id goes under. */
  log: { message: string; key: 'imageId' | 'snapshotId'; fields(outcome: O): Record<string, unknown> };
  outcome(
    action: A,
    status: OutcomeStatus,
    detail?: string,
    extra?: { errorCode?: string; warnings?: string[] },
  ): O;
  dryRun(action: A): O;
  /** Error codes that mean the resource no longer exists. */
  gone: ReadonlySet<string>;
  /** How outcomes read, in the kind's own words. */
  say: {
    marked(action: A): string;
    unmarked: string;
    gone: string;
    /** Found gone by the re-check right before advancing. */
    vanished: string;
    /** Prefix of an advance's detail when the re-check itself failed. */
    recheckFailed: string;
    /** The log line when the re-check failed. */
    recheckFailedLog: string;
  };
  /** Tag keys removed by an unmark, and tags written by a mark. */
  unmarkKeys(action: A): string[];
  tagResources(ids: readonly string[], tags: Record<string, string>): Promise<Map<string, unknown>>;
  untagResources(ids: readonly string[], keys: readonly string[]): Promise<Map<string, unknown>>;
  /**
   * Work before an unmark's tag goes (cancel a deprecation, enable an image). Warnings go with
   * the outcome; an error fails the unmark and keeps the tags, which tell a later run to retry.
   */
  beforeUnmark?(action: A): Promise<{ warnings: string[]; error?: unknown }>;
  /** Work after a mark's tag is written (deprecate, request a usage report): warnings, never failures. */
  afterMark?(action: A): Promise<string[]>;
  /** The current state of the resources about to advance; absent ids no longer exist. */
  describe(ids: readonly string[]): Promise<R[]>;
  /**
   * Further facts read alongside the re-check, before an advance (an image's snapshots): the ids an
   * action needs, read 200 to a call across actions; ids absent from the answer no longer exist.
   */
  prepare?: {
    ids(action: A): readonly string[];
    read(ids: readonly string[]): Promise<P[]>;
    key(fact: P): string;
    /** The log line when they could not be read. */
    failedLog: string;
  };
  resourceId(resource: R): string;
  /** Why the resource, as it is now, must not advance; undefined when it may. */
  veto(resource: R, action: A): string | undefined;
  /** Carries the advance out on a resource the re-check found and allowed. */
  advance(action: A, resource: R, context: AdvanceContext<R, P>): Promise<O>;
}

export interface AdvanceContext<R, P = never> {
  /**
   * After a write that got no answer: the resource as it is now (undefined when gone), read again
   * rather than written again, since a second DeregisterImage or DeleteSnapshot would answer
   * NotFound and hide that the first one worked.
   */
  reread(id: string): Promise<R | undefined | 'unknown'>;
  /**
   * What `prepare` read for this action, by id (absent: gone), or the error that stopped it;
   * undefined when the kind prepares nothing for it.
   */
  prepared?: ReadonlyMap<string, P> | { error: unknown } | undefined;
}

/** Calls in flight per phase; the API limiter, not this number, sets the pace. */
const ACTION_CONCURRENCY = 4;
/** CreateTags and DeleteTags take up to 1,000 resource ids per call. */
const TAG_BATCH = 1000;
/** A re-check by id reads up to 200 resources per call (EC2's filter values). */
const RECHECK_BATCH = 200;
/**
 * The next batch is re-checked once fewer than this many re-checked advances are left to start.
 * Batches are full (200) until nothing more will come, so streaming costs no more re-check calls
 * than re-checking the whole plan at once.
 */
const REFILL_AT = RECHECK_BATCH / 2;
const PHASE_ORDER: Record<Phase, number> = { unmark: 0, advance: 1, mark: 2 };

function isStaged<A>(planned: readonly A[] | StagedPlan<A>): planned is StagedPlan<A> {
  return !Array.isArray(planned);
}

interface Checked<A, R, P> {
  action: A;
  /** The re-check's answer: the resource now, undefined when gone, or the error that stopped it. */
  current: { resource: R | undefined } | { error: unknown };
  /** Ids still to be read by `prepare`, and what it read. */
  waiting: Set<string>;
  prepared?: Map<string, P> | { error: unknown };
}

export async function runLifecycle<A, O, R, P = never>(
  planned: readonly A[] | StagedPlan<A>,
  kind: KindExecution<A, O, R, P>,
  options: ExecuteOptions,
): Promise<O[]> {
  const staged = isStaged(planned) ? planned : undefined;
  const order = (list: readonly A[]) =>
    [...list].sort((a, b) => PHASE_ORDER[kind.phase(a)] - PHASE_ORDER[kind.phase(b)]);
  if (options.dryRun) {
    // Nothing is pushed early in a dry run; whatever was is not carried out either.
    const whole = staged ? await staged.plan : (planned as readonly A[]);
    staged?.early.close();
    return order(whole).map((action) => kind.dryRun(action));
  }

  const results = new Map<A, O>();
  const record = (action: A, result: O) => {
    options.log.info(kind.log.message, { [kind.log.key]: kind.id(action), ...kind.log.fields(result) });
    results.set(action, result);
  };
  const hasTime = () => options.deadline.remainingMs() >= options.reserveMs;
  /** Asked right before each change: time left, and the run's changes not stopped. */
  const mayChange = () => hasTime() && (options.changes?.enter() ?? true);
  const failed = (action: A, error: unknown, warnings: string[] = []) =>
    kind.outcome(action, 'failed', errorMessage(error), { errorCode: errorCode(error), warnings });

  /** Tags in batches; a call that throws outright (throttled past every retry) fails its batch. */
  async function tagInBatches(
    batchActions: readonly A[],
    tag: (ids: string[]) => Promise<Map<string, unknown>>,
    settle: (action: A, error: unknown) => void,
  ): Promise<void> {
    for (let start = 0; start < batchActions.length; start += TAG_BATCH) {
      if (!mayChange()) return;
      const batch = batchActions.slice(start, start + TAG_BATCH);
      let failures: Map<string, unknown>;
      try {
        failures = await tag(batch.map((action) => kind.id(action)));
      } catch (error) {
        failures = new Map(batch.map((action) => [kind.id(action), error]));
      }
      for (const action of batch) settle(action, failures.get(kind.id(action)));
    }
  }

  async function unmarkAll(unmarks: readonly A[]): Promise<void> {
    const warnings = new Map<A, string[]>();
    const ready = new Set<A>();
    // Undo the side effects before dropping the tag: the tag is what tells a later run to retry.
    const undo = kind.beforeUnmark?.bind(kind);
    await forEachConcurrent(unmarks, ACTION_CONCURRENCY, async (action) => {
      if (!undo) {
        ready.add(action);
        return;
      }
      if (!mayChange()) return;
      const undone = await undo(action);
      warnings.set(action, undone.warnings);
      if (undone.error === undefined) ready.add(action);
      else record(action, failed(action, undone.error, undone.warnings));
    });
    const byKeys = new Map<string, A[]>();
    for (const action of unmarks.filter((candidate) => ready.has(candidate))) {
      const keys = JSON.stringify(kind.unmarkKeys(action));
      byKeys.set(keys, [...(byKeys.get(keys) ?? []), action]);
    }
    for (const [keys, group] of byKeys) {
      await tagInBatches(
        group,
        (ids) => kind.untagResources(ids, JSON.parse(keys) as string[]),
        (action, error) => {
          const extra = warnings.get(action) ?? [];
          if (error === undefined)
            record(action, kind.outcome(action, 'done', kind.say.unmarked, { warnings: extra }));
          else if (kind.gone.has(errorCode(error)))
            record(action, kind.outcome(action, 'already-gone', kind.say.gone));
          else record(action, failed(action, error, extra));
        },
      );
    }
  }

  async function markAll(marks: readonly A[]): Promise<void> {
    const tagged: A[] = [];
    await tagInBatches(
      marks,
      (ids) => kind.tagResources(ids, { [MARKED_AT_TAG]: options.now.toISOString() }),
      (action, error) => {
        if (error === undefined) tagged.push(action);
        else if (kind.gone.has(errorCode(error)))
          record(action, kind.outcome(action, 'already-gone', kind.say.gone));
        else record(action, failed(action, error));
      },
    );
    const done = (action: A, warnings: string[]) =>
      kind.outcome(action, 'done', kind.say.marked(action), { warnings });
    const after = kind.afterMark?.bind(kind);
    await forEachConcurrent(tagged, ACTION_CONCURRENCY, async (action) => {
      // Tagged but out of time before its side effects: the mark holds, they wait for the next run.
      record(action, done(action, after && mayChange() ? await after(action) : []));
    });
  }

  const context: Omit<AdvanceContext<R, P>, 'prepared'> = {
    reread: async (id) => {
      try {
        const [resource] = await kind.describe([id]);
        return resource;
      } catch {
        return 'unknown';
      }
    },
  };

  /**
   * Re-checks the advances of `queue` as they come, a batch at a time, and carries out each one the
   * re-check allows, ACTION_CONCURRENCY at a time, until the queue is closed and empty.
   */
  async function advanceStream(queue: Feed<A>): Promise<void> {
    /** Re-checked (and prepared) advances, in order, waiting for a free caller. */
    const ready: Checked<A, R, P>[] = [];
    /** Re-checked advances still waiting for `prepare`'s ids, in order. */
    const preparing: Checked<A, R, P>[] = [];
    /** Ids to prepare, not requested yet. */
    const unread: string[] = [];
    const progress = new Signal();
    let checking = true;

    const settleAdvance = (action: A, result: O) => {
      record(action, result);
      staged?.onSettled?.();
    };

    function promote(): void {
      while (preparing.length > 0 && (preparing[0] as Checked<A, R, P>).waiting.size === 0) {
        ready.push(preparing.shift() as Checked<A, R, P>);
      }
    }

    async function recheck(batch: A[]): Promise<void> {
      let found: Map<string, R> | { error: unknown };
      try {
        const resources = await kind.describe(batch.map((action) => kind.id(action)));
        found = new Map(resources.map((resource) => [kind.resourceId(resource), resource]));
      } catch (error) {
        options.log.error(kind.say.recheckFailedLog, { error });
        found = { error };
      }
      for (const action of batch) {
        const current = found instanceof Map ? { resource: found.get(kind.id(action)) } : found;
        const ids = 'resource' in current && current.resource !== undefined ? kind.prepare?.ids(action) : [];
        const item: Checked<A, R, P> = { action, current, waiting: new Set(ids ?? []) };
        if (kind.prepare && ids && ids.length > 0) {
          item.prepared = new Map();
          unread.push(...item.waiting);
        }
        preparing.push(item);
      }
      promote();
    }

    /** Reads `count` of the unread prepare ids (whole calls of 200, the last one perhaps short). */
    async function prepareSome(count: number): Promise<void> {
      const prepare = kind.prepare;
      if (!prepare) return;
      const ids = unread.splice(0, count);
      let facts: Map<string, P> | { error: unknown };
      try {
        const read = await prepare.read(ids);
        facts = new Map(read.map((fact) => [prepare.key(fact), fact]));
      } catch (error) {
        options.log.warn(prepare.failedLog, { error });
        facts = { error };
      }
      const wanted = new Set(ids);
      for (const item of preparing) {
        for (const id of item.waiting) {
          if (!wanted.has(id)) continue;
          item.waiting.delete(id);
          if (!(facts instanceof Map)) item.prepared = facts;
          else if (item.prepared instanceof Map) {
            const fact = facts.get(id);
            if (fact !== undefined) item.prepared.set(id, fact);
          }
        }
      }
      promote();
    }

    /** One step of re-checking or preparing, when one is due; false when there is nothing to do yet. */
    async function step(): Promise<boolean> {
      // Those waiting on prepare ids do not count: their ids are read with the next batch's.
      const buffered = ready.length;
      // Whole calls of prepare ids first; a short one only once nothing else will come.
      if (unread.length >= RECHECK_BATCH) {
        await prepareSome(unread.length - (unread.length % RECHECK_BATCH));
        return true;
      }
      if (buffered <= REFILL_AT && (queue.size >= RECHECK_BATCH || (queue.finished && queue.size > 0))) {
        await recheck(queue.take(RECHECK_BATCH));
        return true;
      }
      if (unread.length > 0 && queue.finished && queue.size === 0) {
        await prepareSome(unread.length);
        return true;
      }
      return false;
    }

    const checker = (async () => {
      try {
        while (hasTime()) {
          if (queue.closed && queue.size === 0 && unread.length === 0 && preparing.length === 0) break;
          const seen = { queue: queue.changed.version, progress: progress.version };
          if (await step()) {
            progress.notify();
            continue;
          }
          await Promise.race([queue.changed.wait(seen.queue), progress.wait(seen.progress)]);
        }
      } finally {
        checking = false;
        progress.notify();
      }
    })();

    async function carryOut(item: Checked<A, R, P>): Promise<void> {
      const { action, current } = item;
      if (!hasTime()) return;
      if ('error' in current) {
        settleAdvance(
          action,
          kind.outcome(action, 'failed', `${kind.say.recheckFailed}: ${errorMessage(current.error)}`, {
            errorCode: errorCode(current.error),
          }),
        );
        return;
      }
      const resource = current.resource;
      if (resource === undefined) {
        // Someone else removed it; what they did with what it held is theirs to decide.
        settleAdvance(action, kind.outcome(action, 'already-gone', kind.say.vanished));
        return;
      }
      const veto = kind.veto(resource, action);
      if (veto) {
        settleAdvance(action, kind.outcome(action, 'skipped', veto));
        return;
      }
      // The time was checked above, with nothing awaited since.
      if (!(options.changes?.enter() ?? true)) return;
      settleAdvance(action, await kind.advance(action, resource, { ...context, prepared: item.prepared }));
    }

    const worker = async (): Promise<void> => {
      for (;;) {
        const seen = progress.version;
        const item = ready.shift();
        if (item === undefined) {
          if (!checking) return;
          await progress.wait(seen);
          continue;
        }
        progress.notify();
        await carryOut(item);
      }
    };
    await Promise.all([checker, ...Array.from({ length: ACTION_CONCURRENCY }, worker)]);
  }

  const queue = staged?.early ?? new Feed<A>();
  const streaming = advanceStream(queue);
  let whole: readonly A[];
  try {
    whole = staged ? await staged.plan : (planned as readonly A[]);
  } catch (error) {
    queue.close();
    await streaming;
    throw error;
  }
  const actions = order(whole);
  const ofPhase = (phase: Phase) => actions.filter((action) => kind.phase(action) === phase);
  // What came early is carried out as it came; the plan's own copy of it is not done again.
  const early = new Map(queue.pushed.map((action) => [kind.id(action), action]));
  await unmarkAll(ofPhase('unmark'));
  const advances = ofPhase('advance');
  for (const action of advances) if (!early.has(kind.id(action))) queue.push(action);
  queue.close();
  await Promise.all([streaming, markAll(ofPhase('mark'))]);

  const notReached = (action: A) =>
    kind.outcome(action, 'not-reached', 'time budget exhausted before this action started');
  const outcomes = actions.map((action) => {
    const done = kind.phase(action) === 'advance' ? (early.get(kind.id(action)) ?? action) : action;
    return results.get(done) ?? notReached(done);
  });
  // An early advance the plan does not hold would be a planning bug; what was done is reported anyway.
  const held = new Set(advances.map((action) => kind.id(action)));
  for (const [id, action] of early) {
    if (held.has(id)) continue;
    options.log.error('an advance carried out early is missing from the plan', { [kind.log.key]: id });
    outcomes.push(results.get(action) ?? notReached(action));
  }
  return outcomes;
}
