import { errorCode, errorMessage, UnsupportedApiError } from '../errors.ts';
import type {
  ActionOutcome,
  BinnedImage,
  Finding,
  Image,
  RetentionRule,
  Snapshot,
  SnapshotActionOutcome,
} from '../model.ts';
import { RECYCLE_BIN_FINDING, recoverability, undoWindowFindings } from '../rules/undo-window.ts';
import type { RecycleBinPort } from './ports.ts';

/** What the Recycle Bin says for this run; absent parts could not be read. */
export interface UndoWindow {
  binned?: ReadonlyMap<string, BinnedImage>;
  rules?: readonly RetentionRule[];
  /** Why the undo window is unknown, when it is. */
  unknown?: string;
}

/**
 * Reads the bin once per run. An unsupported or failing Recycle Bin API leaves the undo window
 * unknown, never stops the sweep: the snapshot guard then relies on the description rule alone.
 */
export async function readUndoWindow(bin: RecycleBinPort | undefined): Promise<UndoWindow> {
  if (!bin) return {};
  const [images, rules] = await Promise.allSettled([bin.imagesInRecycleBin(), bin.retentionRules()]);
  const window: UndoWindow = {};
  const problems: string[] = [];
  if (images.status === 'fulfilled')
    window.binned = new Map(images.value.map((image) => [image.imageId, image]));
  else problems.push(`images in the Recycle Bin could not be listed (${describe(images.reason)})`);
  if (rules.status === 'fulfilled') window.rules = rules.value;
  else problems.push(`its retention rules could not be read (${describe(rules.reason)})`);
  if (problems.length > 0) window.unknown = problems.join('; ');
  return window;
}

function describe(error: unknown): string {
  return error instanceof UnsupportedApiError
    ? 'not supported here'
    : `${errorCode(error)}: ${errorMessage(error)}`;
}

/** Account findings about the undo window: unknown, no rule covering image removals, short snapshot retention. */
export function undoWindowAccountFindings(
  window: UndoWindow,
  removals: {
    outcomes: readonly ActionOutcome[];
    images: ReadonlyMap<string, Image>;
    snapshots: ReadonlyMap<string, Snapshot>;
  },
): Finding[] {
  if (window.unknown !== undefined) {
    return [
      {
        rule: RECYCLE_BIN_FINDING,
        severity: 'medium',
        reason: `undo window unknown: ${window.unknown}; whether removals can be restored is not known, and snapshots of binned images are judged by their descriptions alone`,
      },
    ];
  }
  if (!window.rules) return [];
  const imageRemovals = removals.outcomes.flatMap((outcome) => {
    if (outcome.action.kind !== 'deregister' || !removing(outcome.status)) return [];
    const image = removals.images.get(outcome.action.imageId);
    if (!image) return [];
    const snapshotTags = (outcome.action.snapshotIds ?? []).map(
      (id) => removals.snapshots.get(id)?.tags ?? image.tags,
    );
    return [{ imageId: image.imageId, tags: image.tags, snapshotTags }];
  });
  return undoWindowFindings({ rules: window.rules, imageRemovals });
}

const REMOVING = new Set(['done', 'planned', 'dry-run']);
function removing(status: string): boolean {
  return REMOVING.has(status);
}

/**
 * Says, on every removal that was or would be made, whether it can be restored from the Recycle
 * Bin and until when. Only where the rules were read: otherwise the account finding says why.
 */
export function annotateRecovery(
  window: UndoWindow,
  now: Date,
  removals: {
    outcomes: ActionOutcome[];
    snapshotOutcomes: SnapshotActionOutcome[];
    images: ReadonlyMap<string, Image>;
    snapshots: ReadonlyMap<string, Snapshot>;
  },
): void {
  const { rules } = window;
  if (!rules) return;
  const recovery = (type: 'EC2_IMAGE' | 'EBS_SNAPSHOT', tags: Readonly<Record<string, string>>) => {
    const result = recoverability(type, tags, rules, now);
    return result.recoverable
      ? { recoverable: true as const, until: result.until.toISOString(), rule: result.rule }
      : { recoverable: false as const, reason: result.reason };
  };
  for (const outcome of removals.outcomes) {
    if (outcome.action.kind !== 'deregister' || !removing(outcome.status)) continue;
    const image = removals.images.get(outcome.action.imageId);
    if (image) outcome.recovery = recovery('EC2_IMAGE', image.tags);
  }
  for (const outcome of removals.snapshotOutcomes) {
    if (outcome.action.kind !== 'delete' || !removing(outcome.status)) continue;
    const snapshot = removals.snapshots.get(outcome.action.snapshotId);
    if (snapshot) outcome.recovery = recovery('EBS_SNAPSHOT', snapshot.tags);
  }
}
