import type { Rule } from './types.ts';

const BACKUP_TAG_PREFIX = 'aws:backup:source-resource';

export const backupManaged: Rule = {
  id: 'backup-managed',
  stage: 'guard',
  schema: {},
  evaluate(image) {
    const tag = Object.keys(image.tags).find((key) => key.startsWith(BACKUP_TAG_PREFIX));
    if (!tag) return [];
    return [
      {
        kind: 'keep',
        reason: `managed by AWS Backup (tag ${tag}); its retention is AWS Backup's to enforce`,
      },
    ];
  },
};
