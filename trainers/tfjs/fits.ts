// Whether a model and batch fit the worker before anything is built: an estimate of the peak memory
// (model/memory.ts) against the wasm heap ceiling and what the machine can give, so an oversized
// config fails at once, naming its fields, instead of aborting the backend mid-step.
import * as tf from '@tensorflow/tfjs-core';
import type { TrainingInput } from '../../common/config';
import type { GptConfig } from '../../model/gpt';
import { checkTrainingFits, machineMemoryBytes, parameterCountOf, type MemoryEstimate } from '../../model/memory';
import { replicaCount } from '../../model/parallel';

/** Throws ModelTooLargeError when training `cfg` with `training` cannot fit; the backend must be initialised. */
export function checkFits(
  cfg: GptConfig,
  training: Pick<TrainingInput, 'threads' | 'batchSize' | 'gradAccumSteps' | 'emaDecay'>,
): MemoryEstimate {
  const replicas = replicaCount(
    training.threads,
    training.batchSize,
    parameterCountOf(cfg) * training.batchSize * cfg.seqLen,
  );
  return checkTrainingFits(
    cfg,
    { batchSize: training.batchSize, gradAccumSteps: training.gradAccumSteps, replicas, ema: training.emaDecay > 0 },
    { availableBytes: machineMemoryBytes(), backend: tf.getBackend() },
  );
}
