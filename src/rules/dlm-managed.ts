import { managedByTagPrefix } from './managed.ts';

export const dlmManaged = managedByTagPrefix('dlm-managed', 'aws:dlm:', 'Data Lifecycle Manager');
