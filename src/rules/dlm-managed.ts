import { DLM_TAG_PREFIX, managedByTagPrefix } from './managed.ts';

export const dlmManaged = managedByTagPrefix('dlm-managed', DLM_TAG_PREFIX, 'Data Lifecycle Manager');
