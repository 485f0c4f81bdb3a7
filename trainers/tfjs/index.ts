// The built-in trainer: a GPT in TensorFlow.js (model/), trained in segments with exact resume.
// Backend: tfjs-node-gpu → tfjs-node → wasm (model/backend.ts); states live in the checkpoint store.
import * as path from 'node:path';
import type { Logger } from '../../infra/log';
import type { CheckpointStore } from '../../infra/store/store';
import { ModelSchema, parseOrExplain, TrainingSchema } from '../../common/config';
import { initBackend } from '../../model/backend';
import { machineMemoryBytes } from '../../model/memory';
import { WEIGHTS_FILE } from '../../model/checkpoint';
import { ObjectNotFoundError } from '../../infra/store/store';
import type { Trainer } from '../trainer';
import { modelConfig } from './data';
import { checkFits } from './fits';
import { exportModel } from './export';
import { findLearningRate } from './lr-find';
import { trainSegment } from './segment';

export function createTfjsTrainer(dataDir: string, store: CheckpointStore, log: Logger): Trainer {
  const workDir = path.join(dataDir, 'work');
  return {
    kind: 'tfjs',
    trainSegment: (req, hooks) => trainSegment(workDir, store, log, req, hooks),
    findLearningRate: (req, hooks) => findLearningRate(workDir, store, log, req, hooks),
    exportModel: (req, hooks) => exportModel(workDir, store, log, req, hooks),
    async checkCapacity(req) {
      const model = parseOrExplain(ModelSchema, req.model, 'capacity check model');
      const training = parseOrExplain(TrainingSchema, req.training, 'capacity check training');
      // A warm start that is not in the store would only surface at the first segment, after curation.
      if (training.initFrom && !(await store.exists(`${training.initFrom}/${WEIGHTS_FILE}`))) {
        throw new ObjectNotFoundError(
          `training.initFrom '${training.initFrom}': no model there (${WEIGHTS_FILE} is not in ${store.uri}; finetune/base-model.ts importBaseModel puts a base model in the store)`,
        );
      }
      const backend = await initBackend(model.backend, (m) => log.info(m));
      // Before curation the tokenizer is not trained yet: its vocabulary is at most model.vocabSize.
      const est = checkFits(
        modelConfig(model, { vocabSize: model.tokenizer === 'bytes' ? 256 : model.vocabSize }),
        training,
      );
      return { backend, estimatedBytes: est.totalBytes, availableBytes: machineMemoryBytes() };
    },
  };
}

export { modelConfig, stateTokenizer } from './data';
