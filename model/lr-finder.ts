// The LR range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017): train a
// fresh model while the learning rate grows exponentially from minLr to maxLr, watch the smoothed
// loss, and suggest an LR from the curve. A few hundred steps instead of a grid search.
//
// Which point of the curve depends on how long training will run. The test sees each LR for a few
// steps only, so the lowest loss sits near divergence: a third of it is right for a run no longer
// than the test (a short grid search agrees), but a run several times longer at that LR degrades
// (measured: default model, 120-step test, min/3 = 9e-2; a 300-step grid is best at 3e-3 and
// 0.17 nats worse at 1e-2). There the steepest descent (2.4e-3) is the safe choice. Between
// the two, the suggestion moves geometrically with the run's length relative to the test's.
import { disposeWeights, initWeights, type GptConfig, type Weights } from './gpt';
import { Trainer, type Objective, type TrainConfig } from './trainer';
import type { TokenIds } from './tokenizer';

export interface LrFindOptions {
  minLr: number;
  maxLr: number;
  steps: number;
  batchSize: number;
  seed: number;
  modelSeed: number;
  weightDecay: number;
  gradClip: number;
  beta1: number;
  beta2: number;
  threads?: number | 'auto'; // as training: the test's steps cost what training's will
  gradAccumSteps?: number; // as training: the same effective batch, so the same LR scale
  /** Steps the suggestion is for (the schedule's horizon); absent: a run as long as the test. */
  horizonSteps?: number;
  stopAt?: number; // epoch ms: stop with the points so far (a training deadline)
  /** Fine-tuning: the tensors `data`'s objective trains (a base prepared by finetune/), instead of a fresh model. The caller owns them. */
  trainable?: Weights;
  onStep?: (p: { step: number; steps: number; lr: number; loss: number; smoothed: number }) => void | Promise<void>;
}

/** Too few points to read a suggestion from (stopped at the deadline, or diverged at once). */
export class LrFindInconclusiveError extends Error {
  override name = 'LrFindInconclusiveError';
}

export interface LrFindResult {
  curve: { lr: number; loss: number; smoothed: number }[];
  suggestedLr: number; // from minLossLr / 3 (a run as short as the test) to steepestLr (≥ 2× longer)
  steepestLr: number; // steepest descent of the smoothed loss against log(LR)
  minLossLr: number; // where the smoothed loss was lowest
  diverged: boolean; // stopped early because the loss blew up
}

export async function lrRangeTest(
  cfg: GptConfig,
  data: TokenIds | Objective,
  opts: LrFindOptions,
): Promise<LrFindResult> {
  const weights = opts.trainable ?? initWeights(cfg, opts.modelSeed);
  // A flat schedule (peak 1, no warmup, an endless horizon) so lrScale *is* the learning rate.
  const flat: TrainConfig = {
    steps: Number.MAX_SAFE_INTEGER,
    batchSize: opts.batchSize,
    learningRate: 1,
    warmupSteps: 0,
    weightDecay: opts.weightDecay,
    gradClip: opts.gradClip,
    beta1: opts.beta1,
    beta2: opts.beta2,
    seed: opts.seed,
    threads: opts.threads,
    gradAccumSteps: opts.gradAccumSteps,
  };
  const trainer = new Trainer(cfg, weights, flat, data);
  const curve: LrFindResult['curve'] = [];
  const beta = 0.9;
  let avg = 0;
  let best = Infinity;
  let diverged = false;
  try {
    for (let i = 0; i < opts.steps; i++) {
      if (opts.stopAt !== undefined && Date.now() >= opts.stopAt) break;
      const lr = opts.minLr * (opts.maxLr / opts.minLr) ** (i / Math.max(1, opts.steps - 1));
      trainer.lrScale = lr;
      const { loss } = trainer.trainStep();
      if (!Number.isFinite(loss)) {
        diverged = true;
        break;
      }
      avg = beta * avg + (1 - beta) * loss;
      const smoothed = avg / (1 - beta ** (i + 1));
      curve.push({ lr, loss, smoothed });
      best = Math.min(best, smoothed);
      if (i > 10 && smoothed > 4 * best) {
        diverged = true;
        break;
      }
      if (opts.onStep) await opts.onStep({ step: i + 1, steps: opts.steps, lr, loss, smoothed });
      else await new Promise((r) => setImmediate(r));
    }
  } finally {
    trainer.dispose();
    if (!opts.trainable) disposeWeights(weights);
  }
  if (curve.length < 10)
    throw new LrFindInconclusiveError(
      `LR range test stopped after ${curve.length} steps (${diverged ? `diverged: lower minLr (${opts.minLr})` : 'the deadline came'}); at least 10 are needed`,
    );
  return { curve, ...suggestFromCurve(curve, opts.horizonSteps ?? curve.length), diverged };
}

/** The suggestion for a run of `horizonSteps` steps, read from a range test's curve. */
export function suggestFromCurve(
  curve: LrFindResult['curve'],
  horizonSteps: number,
): Pick<LrFindResult, 'suggestedLr' | 'steepestLr' | 'minLossLr'> {
  const minLossAt = curve.reduce((b, p, i) => (p.smoothed < curve[b].smoothed ? i : b), 0);
  // Steepest descent before the minimum: slope of the smoothed loss over a window in log(LR).
  const w = Math.max(2, Math.floor(curve.length / 20));
  let steepest = 0;
  let steepestSlope = Infinity;
  for (let i = w; i + w < Math.min(curve.length, Math.max(minLossAt, 2 * w + 1)); i++) {
    const slope =
      (curve[i + w].smoothed - curve[i - w].smoothed) / (Math.log(curve[i + w].lr) - Math.log(curve[i - w].lr));
    if (slope < steepestSlope) {
      steepestSlope = slope;
      steepest = i;
    }
  }
  const minLossLr = curve[minLossAt].lr;
  const steepestLr = curve[steepest].lr;
  const short = minLossLr / 3;
  const long = Math.min(steepestLr, short);
  // 0 for a run no longer than the test, 1 from twice its length on.
  const t = Math.min(1, Math.max(0, Math.log2(Math.max(1, horizonSteps) / curve.length)));
  const suggestedLr = t === 0 ? short : t === 1 ? long : Math.exp((1 - t) * Math.log(short) + t * Math.log(long));
  return { suggestedLr, steepestLr, minLossLr };
}
