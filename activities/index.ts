// The activities of each task queue, built from a worker's adapters. Workflows import only the types.
import type { Chain } from '../infra/chain/chain';
import type { Settings } from '../infra/settings';
import type { CheckpointStore } from '../infra/store/store';
import { makeCheckpoint } from './checkpoint';
import { makeCommit } from './commit';
import { makeCurate } from './curate';
import { makeLrFind } from './lr-find';
import { makeAwaitScore } from './score';
import { makeTrain } from './train';

/** minerflow-control: CPU work and the chain. */
export function createControlActivities(settings: Settings, store: CheckpointStore, chain: () => Promise<Chain>) {
  return {
    curateCorpus: makeCurate(settings, store),
    ...makeCommit(settings, chain),
    awaitScore: makeAwaitScore(settings, chain),
  };
}

/** minerflow-gpu: training, evaluation and checkpoint writing. */
export function createGpuActivities(settings: Settings, store: CheckpointStore) {
  return {
    trainSegment: makeTrain(settings, store),
    lrFind: makeLrFind(settings, store),
    checkpoint: makeCheckpoint(settings, store),
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
export type GpuActivities = ReturnType<typeof createGpuActivities>;
