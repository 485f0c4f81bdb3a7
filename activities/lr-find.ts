// The LR range test as a stage (gpu queue): a throwaway fresh model trains on the curated train
// split while the LR grows; the cycle then trains with the suggestion. Returns a small JSON report
// (the suggestion, the clamped LR the cycle uses, the curve thinned to a few dozen points); the
// full curve goes to the store beside the run's segments.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { heartbeat, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { ModelSchema, parseOrExplain, TrainingSchema, type ModelInput, type TrainingInput } from '../common/config';
import type { DatasetRef, LrFindReport } from '../common/types';
import { readSplit } from '../curation/curate';
import type { Settings } from '../infra/settings';
import type { CheckpointStore } from '../infra/store/store';
import { initBackend } from '../model/backend';
import { lrRangeTest, LrFindInconclusiveError } from '../model/lr-finder';
import { mapErrors } from './errors';
import { datasetTokenizer, modelConfig } from './train';

export interface LrFindInput {
  runId: string;
  dataset: DatasetRef;
  model: ModelInput;
  training: TrainingInput;
  stopAt?: number; // epoch ms: the training deadline; the test stops there with what it has
}

/** Points kept in the report: enough to draw the curve, small enough for workflow history. */
export const REPORT_POINTS = 40;

export function makeLrFind(settings: Settings, store: CheckpointStore) {
  return async function lrFind(input: LrFindInput): Promise<LrFindReport> {
    return mapErrors(async () => {
      const model = parseOrExplain(ModelSchema, input.model, 'lrFind input model');
      const training = parseOrExplain(TrainingSchema, input.training, 'lrFind input training');
      const opts = training.lrFind;
      heartbeat({ stage: 'loading' });
      await initBackend(model.backend, (m) => log.info(m));
      // The tokenizer the first segment will train with (a fresh model's: the dataset's).
      const tokenizer = await datasetTokenizer(settings, store, input.dataset, model);
      const data = tokenizer.encodeDocuments(await readSplit(await store.get(input.dataset.trainKey)));
      const t0 = Date.now();
      const r = await lrRangeTest(modelConfig(model, tokenizer), data, {
        minLr: opts.minLr,
        maxLr: opts.maxLr,
        steps: opts.steps,
        horizonSteps: training.steps, // the suggestion is for this cycle's run, not for the test's few steps
        batchSize: training.batchSize,
        seed: training.seed,
        modelSeed: model.seed,
        weightDecay: training.weightDecay,
        gradClip: training.gradClip,
        beta1: training.beta1,
        beta2: training.beta2,
        threads: training.threads,
        gradAccumSteps: training.gradAccumSteps,
        stopAt: input.stopAt,
        onStep: async (p) => {
          heartbeat({ stage: 'lrFind', ...p });
          await new Promise((resolve) => setImmediate(resolve)); // let heartbeats and cancellation through
        },
      }).catch((err: unknown) => {
        // Too few points to read (deadline, or divergence from the first steps): retrying cannot help.
        if (err instanceof LrFindInconclusiveError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      });
      const seconds = (Date.now() - t0) / 1000;
      const chosenLr = Math.min(opts.ceiling, Math.max(opts.floor, r.suggestedLr));
      const curveKey = `runs/${input.runId}/lr-find.json`;
      const file = path.join(settings.dataDir, 'work', curveKey);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, JSON.stringify(r));
      await store.put(curveKey, file);
      log.info('LR range test done', { suggestedLr: r.suggestedLr, chosenLr, steepestLr: r.steepestLr, minLossLr: r.minLossLr, steps: r.curve.length, diverged: r.diverged, seconds });
      return {
        suggestedLr: r.suggestedLr,
        chosenLr,
        steepestLr: r.steepestLr,
        minLossLr: r.minLossLr,
        diverged: r.diverged,
        steps: r.curve.length,
        seconds,
        curve: thin(r.curve, REPORT_POINTS).map((p) => ({ lr: round(p.lr), loss: round(p.smoothed) })),
        curveKey,
      };
    });
  };
}

/** Every k-th point (first and last kept), so the report stays a few dozen points. */
function thin<T>(points: T[], max: number): T[] {
  if (points.length <= max) return points;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(points[Math.round((i * (points.length - 1)) / (max - 1))]);
  return out;
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}
