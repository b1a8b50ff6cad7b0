import { managedByTagPrefix } from './managed.ts';

export const backupManaged = managedByTagPrefix('backup-managed', 'aws:backup:source-resource', 'AWS Backup');
