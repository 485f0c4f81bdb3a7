// The workers' activities for tests that call them directly (MockActivityEnvironment).
import { createControlActivities, createGpuActivities } from '../../activities';
import type { Chain } from '../../infra/chain/chain';
import { createLogger } from '../../infra/log';
import type { Settings } from '../../infra/settings';
import type { CheckpointStore } from '../../infra/store/store';

/** Quiet unless MINERFLOW_LOG_LEVEL says otherwise. */
export const testLogger = createLogger({ level: process.env.MINERFLOW_LOG_LEVEL ?? 'warn' });

export function gpuActivities(settings: Settings, store: CheckpointStore) {
  return createGpuActivities(settings, store, testLogger);
}

export function controlActivities(settings: Settings, store: CheckpointStore, chain: () => Promise<Chain>) {
  return createControlActivities(settings, store, chain, testLogger);
}
