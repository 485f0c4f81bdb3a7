// Stage 2, train (gpu queue): the trainer runs here; this file only loads data, heartbeats progress
// (step, loss, LR, grad norm, tokens/s) and saves the result to the store.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { activityInfo, cancellationSignal, heartbeat, log } from '@temporalio/activity';
import { ModelSchema, parseOrExplain, TrainingSchema, type ModelInput, type TrainingInput } from '../common/config';
import type { DatasetRef, TrainResult } from '../common/types';
import { readSplit } from '../curation/curate';
import type { Settings } from '../infra/settings';
import type { CheckpointStore } from '../infra/store/store';
import { initBackend } from '../model/backend';
import { saveWeights, WEIGHTS_FILE } from '../model/checkpoint';
import { disposeWeights, initWeights, parameterCount } from '../model/gpt';
import { BYTE_VOCAB_SIZE, encodeDocuments } from '../model/tokenizer';
import { Trainer, type StepReport } from '../model/trainer';
import { mapErrors } from './errors';

export interface TrainActivityInput {
  runId: string;
  dataset: DatasetRef;
  model: ModelInput;
  training: TrainingInput;
}

/** What the train activity heartbeats; `minerflow cycle status` shows it. */
export type TrainProgress = Omit<StepReport, 'skipped'> & { stage: 'training' };

export function makeTrain(settings: Settings, store: CheckpointStore) {
  return async function train(input: TrainActivityInput): Promise<TrainResult> {
    return mapErrors(async () => {
      const model = parseOrExplain(ModelSchema, input.model, 'train input model');
      const training = parseOrExplain(TrainingSchema, input.training, 'train input training');
      heartbeat({ stage: 'loading' });
      const backend = await initBackend(model.backend, (m) => log.info(m));
      const tokens = encodeDocuments(await readSplit(await store.get(input.dataset.trainKey)));
      const cfg = { vocabSize: BYTE_VOCAB_SIZE, seqLen: model.seqLen, dModel: model.dModel, nLayer: model.nLayer, nHead: model.nHead };
      const weights = initWeights(cfg, model.seed);
      const trainer = new Trainer(cfg, weights, training, tokens);
      const workDir = path.join(settings.dataDir, 'work', 'runs', input.runId);
      await fs.mkdir(workDir, { recursive: true });
      const metrics = await fs.open(path.join(workDir, 'metrics.jsonl'), 'w');
      log.info('training', { params: parameterCount(weights), tokens: tokens.length, steps: training.steps, backend, attempt: activityInfo().attempt });
      try {
        const summary = await trainer.run(async (r) => {
          await metrics.write(JSON.stringify(r) + '\n');
          heartbeat({ stage: 'training', ...r } satisfies TrainProgress);
          if (r.step % 25 === 0 || r.step === r.totalSteps) {
            log.info(`step ${r.step}/${r.totalSteps} loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} grad ${r.gradNorm.toFixed(2)} ${r.tokensPerSec.toFixed(0)} tok/s`);
          }
          await new Promise((resolve) => setImmediate(resolve)); // let heartbeats and cancellation through
          if (cancellationSignal().aborted) throw cancellationSignal().reason ?? new Error('cancelled');
        });
        const hash = await saveWeights(path.join(workDir, WEIGHTS_FILE), weights, { format: 'pt' });
        const state = { step: summary.steps, trainLoss: summary.finalLoss, modelHash: hash, backend, finishedAt: new Date().toISOString() };
        await fs.writeFile(path.join(workDir, 'state.json'), JSON.stringify(state, null, 2) + '\n');
        const key = `runs/${input.runId}`;
        for (const f of [WEIGHTS_FILE, 'state.json', 'metrics.jsonl']) await store.put(`${key}/${f}`, path.join(workDir, f));
        return {
          stateKey: key,
          modelHash: hash,
          steps: summary.steps,
          trainLoss: summary.finalLoss,
          tokens: summary.tokens,
          seconds: summary.seconds,
          tokensPerSec: summary.tokens / summary.seconds,
          skippedBatches: summary.skipped,
          backend,
        };
      } finally {
        await metrics.close();
        trainer.dispose();
        disposeWeights(weights);
      }
    });
  };
}
