// The activities of each task queue, built from a worker's adapters: the shared stages (curate,
// train, LR range test) and every subnet's own (subnets/<name>/). Workflows import only the types.
import type { Chain } from '../infra/chain/chain';
import type { Logger } from '../infra/log';
import type { Settings } from '../infra/settings';
import type { CheckpointStore } from '../infra/store/store';
import { connito, gradients } from '../subnets';
import type { SubnetContext } from '../subnets/subnet';
import { createTrainers } from '../trainers';
import { makeCurate } from './curate';
import { makeTrainActivities } from './train';

function context(settings: Settings, store: CheckpointStore, chain: () => Promise<Chain>, log: Logger): SubnetContext {
  return { settings, store, chain, log, trainerFor: createTrainers(settings.dataDir, store, log) };
}

/** minerflow-control: CPU work, the chain, and each subnet's control activities. */
export function createControlActivities(
  settings: Settings,
  store: CheckpointStore,
  chain: () => Promise<Chain>,
  log: Logger,
) {
  const ctx = context(settings, store, chain, log);
  return {
    curateCorpus: makeCurate(settings, store),
    ...connito.controlActivities(ctx),
    ...gradients.controlActivities(ctx),
  };
}

/** minerflow-gpu: training, evaluation, and publishing what a trainer exported. */
export function createGpuActivities(settings: Settings, store: CheckpointStore, log: Logger) {
  const ctx = context(settings, store, () => Promise.reject(new Error('the gpu worker has no chain connection')), log);
  return {
    ...makeTrainActivities(ctx.trainerFor),
    ...connito.gpuActivities(ctx),
    ...gradients.gpuActivities(ctx),
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
export type GpuActivities = ReturnType<typeof createGpuActivities>;
