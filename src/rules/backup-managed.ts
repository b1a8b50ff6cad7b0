import { BACKUP_TAG_PREFIX, managedByTagPrefix } from './managed.ts';

export const backupManaged = managedByTagPrefix('backup-managed', BACKUP_TAG_PREFIX, 'AWS Backup');
