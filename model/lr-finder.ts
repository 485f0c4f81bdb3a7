// The LR range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017): train a
// fresh model while the learning rate grows exponentially from minLr to maxLr, watch the smoothed
// loss, and suggest the LR where it falls fastest. A few hundred steps instead of a grid search.
import { disposeWeights, initWeights, type GptConfig } from './gpt';
import { Trainer, type TrainConfig } from './trainer';
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
}

export interface LrFindResult {
  curve: { lr: number; loss: number; smoothed: number }[];
  suggestedLr: number; // a third of minLossLr: a step back from where the loss turns up
  steepestLr: number; // steepest descent of the smoothed loss against log(LR)
  minLossLr: number; // where the smoothed loss was lowest
  diverged: boolean; // stopped early because the loss blew up
}

export async function lrRangeTest(cfg: GptConfig, data: TokenIds, opts: LrFindOptions): Promise<LrFindResult> {
  const weights = initWeights(cfg, opts.modelSeed);
  // A flat schedule (peak 1, no warmup, an endless horizon) so lrScale *is* the learning rate.
  const flat: TrainConfig = { steps: Number.MAX_SAFE_INTEGER, batchSize: opts.batchSize, learningRate: 1, warmupSteps: 0, weightDecay: opts.weightDecay, gradClip: opts.gradClip, beta1: opts.beta1, beta2: opts.beta2, seed: opts.seed };
  const trainer = new Trainer(cfg, weights, flat, data);
  const curve: LrFindResult['curve'] = [];
  const beta = 0.9;
  let avg = 0;
  let best = Infinity;
  let diverged = false;
  try {
    for (let i = 0; i < opts.steps; i++) {
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
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    trainer.dispose();
    disposeWeights(weights);
  }
  if (curve.length < 10) throw new Error(`LR range test stopped after ${curve.length} steps; lower minLr (${opts.minLr})`);
  const minLossAt = curve.reduce((b, p, i) => (p.smoothed < curve[b].smoothed ? i : b), 0);
  // Steepest descent before the minimum: slope of the smoothed loss over a window in log(LR).
  const w = Math.max(2, Math.floor(curve.length / 20));
  let steepest = 0;
  let steepestSlope = Infinity;
  for (let i = w; i + w < Math.max(minLossAt, 2 * w + 1); i++) {
    const slope = (curve[i + w].smoothed - curve[i - w].smoothed) / (Math.log(curve[i + w].lr) - Math.log(curve[i - w].lr));
    if (slope < steepestSlope) {
      steepestSlope = slope;
      steepest = i;
    }
  }
  return { curve, suggestedLr: curve[minLossAt].lr / 3, steepestLr: curve[steepest].lr, minLossLr: curve[minLossAt].lr, diverged };
}
