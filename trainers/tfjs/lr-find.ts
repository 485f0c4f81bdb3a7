// The built-in trainer's LR range test: a throwaway fresh model trains on the curated train split
// while the LR grows; the loop then trains with the suggestion. Returns a small report (the
// suggestion, the clamped LR training uses, the curve thinned to a few dozen points); the full
// curve goes to the store beside the run's segments. The CLI's `lr-find` reaches it as the activity
// does, through the trainer port.
// When fine-tuning, the test trains the base (training.initFrom) with the run's method and objective.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { ModelSchema, parseOrExplain, TrainingSchema, type ModelInput, type TrainingInput } from '../../common/config';
import type { LrFindReport } from '../../common/types';
import type { Logger } from '../../infra/log';
import type { CheckpointStore } from '../../infra/store/store';
import { initBackend, withBackendRecovery } from '../../model/backend';
import { lrRangeTest, type LrFindOptions, type LrFindResult } from '../../model/lr-finder';
import type { TokenIds, Tokenizer } from '../../model/tokenizer';
import type { LrFindRequest, TrainerHooks } from '../trainer';
import { FinetuneRun } from '../../finetune/run';
import { loadWeights, WEIGHTS_FILE } from '../../model/checkpoint';
import { disposeWeights, type Weights } from '../../model/gpt';
import type { Objective } from '../../model/trainer';
import { datasetTokenizer, modelConfig, readExampleSplits, readTokens, stateTokenizer } from './data';
import { checkFits } from './fits';

/** Points kept in the report: enough to draw the curve, small enough for workflow history. */
export const REPORT_POINTS = 40;

/** The range test with the cycle's own batch, threads and accumulation, so its steps cost what training's do. */
export function runRangeTest(
  model: ModelInput,
  training: TrainingInput,
  tokenizer: Tokenizer,
  data: TokenIds | Objective,
  opts: Pick<LrFindOptions, 'stopAt' | 'onStep' | 'trainable'> = {},
): Promise<LrFindResult> {
  const f = training.lrFind;
  return lrRangeTest(modelConfig(model, tokenizer), data, {
    minLr: f.minLr,
    maxLr: f.maxLr,
    steps: f.steps,
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
    stopAt: opts.stopAt,
    onStep: opts.onStep,
    trainable: opts.trainable,
  });
}

/** The suggestion clamped to training.lrFind [floor, ceiling]: what training uses. */
export function chosenLr(training: TrainingInput, suggestedLr: number): number {
  return Math.min(training.lrFind.ceiling, Math.max(training.lrFind.floor, suggestedLr));
}

export function findLearningRate(
  workDir: string,
  store: CheckpointStore,
  log: Logger,
  input: LrFindRequest,
  hooks: TrainerHooks,
): Promise<LrFindReport> {
  return withBackendRecovery(
    () => rangeTest(workDir, store, log, input, hooks),
    (m) => log.warn(m),
  );
}

async function rangeTest(
  workDir: string,
  store: CheckpointStore,
  log: Logger,
  input: LrFindRequest,
  hooks: TrainerHooks,
): Promise<LrFindReport> {
  const model = parseOrExplain(ModelSchema, input.model, 'lrFind input model');
  const training = parseOrExplain(TrainingSchema, input.training, 'lrFind input training');
  hooks.progress({ stage: 'loading' });
  await initBackend(model.backend, (m) => log.info(m));
  // The tokenizer the first segment will train with (a fresh model's: the dataset's; fine-tuning: the base's).
  const ft = training.finetune;
  const tokenizer = ft
    ? await stateTokenizer(store, training.initFrom!)
    : await datasetTokenizer(workDir, store, input.dataset, model, hooks.progress);
  const cfg = modelConfig(model, tokenizer);
  checkFits(cfg, training);
  let run: FinetuneRun | undefined;
  let base: Weights | undefined;
  let data: TokenIds | Objective;
  if (ft) {
    const examples = await readExampleSplits(store, input.dataset, ft, tokenizer, cfg.seqLen);
    base = await loadWeights(await store.get(`${training.initFrom!}/${WEIGHTS_FILE}`), cfg);
    run = new FinetuneRun(cfg, base, ft);
    data = run.objective(examples.train);
  } else data = await readTokens(store, input.dataset.trainKey, tokenizer);
  const t0 = Date.now();
  let r: LrFindResult;
  try {
    r = await runRangeTest(model, training, tokenizer, data, {
      stopAt: input.stopAt,
      trainable: run?.model.trainable,
      onStep: async (p) => {
        hooks.progress({ stage: 'lrFind', ...p });
        await new Promise((resolve) => setImmediate(resolve)); // let heartbeats and cancellation through
        if (hooks.signal.aborted) throw hooks.signal.reason ?? new Error('cancelled');
      },
    });
  } finally {
    run?.dispose();
    if (base) disposeWeights(base);
  }
  const seconds = (Date.now() - t0) / 1000;
  const chosen = chosenLr(training, r.suggestedLr);
  const curveKey = `runs/${input.runId}/lr-find.json`;
  const file = path.join(workDir, curveKey);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, JSON.stringify(r));
  await store.put(curveKey, file);
  log.info(
    {
      suggestedLr: r.suggestedLr,
      chosenLr: chosen,
      steepestLr: r.steepestLr,
      minLossLr: r.minLossLr,
      steps: r.curve.length,
      diverged: r.diverged,
      seconds,
    },
    'LR range test done',
  );
  return {
    suggestedLr: r.suggestedLr,
    chosenLr: chosen,
    steepestLr: r.steepestLr,
    minLossLr: r.minLossLr,
    diverged: r.diverged,
    steps: r.curve.length,
    seconds,
    curve: thin(r.curve, REPORT_POINTS).map((p) => ({ lr: round(p.lr), loss: round(p.smoothed) })),
    curveKey,
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
