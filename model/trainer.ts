// The training loop, in the spirit of nanoGPT's train.py: sample a batch, forward, backward,
// clip, AdamW step on a cosine schedule; report loss, LR, gradient norm and tokens/s every step.
// Knows nothing about Temporal: the train activity calls it and heartbeats from onStep.
import * as tf from '@tensorflow/tfjs-core';
import { crossEntropy, forward, type GptConfig, type Weights } from './gpt';
import { windowsToTensors } from './evaluate';
import { AdamW, cosineWithWarmup } from './optimizer';
import { Rng } from './rng';

export interface TrainConfig {
  steps: number;
  batchSize: number;
  learningRate: number; // peak
  warmupSteps: number;
  weightDecay: number;
  gradClip: number;
  beta1: number;
  beta2: number;
  seed: number; // batch order
}

export interface StepReport {
  step: number; // steps completed, 1-based
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  skipped: number; // non-finite batches skipped so far
}

export interface TrainSummary {
  steps: number;
  finalLoss: number; // mean of the last few steps' loss
  tokens: number;
  seconds: number;
  skipped: number;
  history: StepReport[];
}

export class Trainer {
  private readonly optimizer: AdamW;
  private readonly rng: Rng;
  step = 0;
  skipped = 0;

  constructor(
    private readonly cfg: GptConfig,
    private readonly weights: Weights,
    private readonly train: TrainConfig,
    private readonly data: Uint8Array,
  ) {
    if (data.length < cfg.seqLen + 2) {
      throw new Error(`training data has ${data.length} tokens; at least ${cfg.seqLen + 2} are needed`);
    }
    this.optimizer = new AdamW(weights, { beta1: train.beta1, beta2: train.beta2, eps: 1e-8, weightDecay: train.weightDecay, gradClip: train.gradClip });
    this.rng = new Rng(train.seed);
  }

  /** One optimisation step on a fresh random batch. */
  trainStep(): Omit<StepReport, 'tokensPerSec' | 'totalSteps'> {
    const T = this.cfg.seqLen;
    const starts = Array.from({ length: this.train.batchSize }, () => this.rng.int(this.data.length - T - 1));
    const lr = cosineWithWarmup(this.step, this.train.learningRate, this.train.warmupSteps, this.train.steps);
    const { ids, targets } = windowsToTensors(this.data, starts, T);
    const { value, grads } = tf.variableGrads(() => crossEntropy(forward(this.weights, this.cfg, ids), targets));
    ids.dispose();
    targets.dispose();
    const loss = value.dataSync()[0];
    value.dispose();
    let gradNorm = NaN;
    // A NaN/Inf batch is skipped, not applied: one bad batch must not poison the weights.
    if (Number.isFinite(loss)) gradNorm = this.optimizer.apply(grads, lr);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) this.skipped += 1;
    tf.dispose(grads);
    this.step += 1;
    return { step: this.step, loss, lr, gradNorm, skipped: this.skipped };
  }

  /** Runs to `train.steps`, calling onStep after each step (await it: that is where heartbeats go out). */
  async run(onStep?: (r: StepReport) => void | Promise<void>): Promise<TrainSummary> {
    const tokensPerStep = this.train.batchSize * this.cfg.seqLen;
    const history: StepReport[] = [];
    const t0 = performance.now();
    let windowStart = t0;
    while (this.step < this.train.steps) {
      const r = this.trainStep();
      const now = performance.now();
      const report: StepReport = { ...r, totalSteps: this.train.steps, tokensPerSec: tokensPerStep / ((now - windowStart) / 1000) };
      windowStart = now;
      history.push(report);
      if (onStep) await onStep(report);
    }
    const tail = history.slice(-Math.min(10, history.length)).filter((h) => Number.isFinite(h.loss));
    return {
      steps: this.step,
      finalLoss: tail.reduce((a, h) => a + h.loss, 0) / Math.max(1, tail.length),
      tokens: history.length * tokensPerStep,
      seconds: (performance.now() - t0) / 1000,
      skipped: this.skipped,
      history,
    };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
