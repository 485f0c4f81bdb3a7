// The training loop, in the spirit of nanoGPT's train.py: sample a batch, forward, backward,
// clip, AdamW step on a cosine schedule; report loss, LR, gradient norm and tokens/s every step.
// Its whole state (step, optimizer moments, RNG, LR scale) can be saved and restored, so training
// N steps, stopping, and resuming for N more gives the same weights as 2N steps straight.
// Knows nothing about Temporal: the train activity calls it and heartbeats from onStep.
import * as tf from '@tensorflow/tfjs-core';
import { trainingLoss, type GptConfig, type Weights } from './gpt';
import { windowsToTensors } from './evaluate';
import { AdamW, cosineWithWarmup } from './optimizer';
import { Ema } from './ema';
import { Rng } from './rng';
import type { TokenIds } from './tokenizer';

export interface TrainConfig {
  steps: number; // the schedule's horizon: cosine decay reaches zero here
  batchSize: number;
  learningRate: number; // peak
  warmupSteps: number;
  weightDecay: number;
  gradClip: number;
  beta1: number;
  beta2: number;
  seed: number; // batch order
  emaDecay?: number; // 0 or absent: no EMA of the weights
}

/** Everything besides weights and moments that training needs to continue exactly. */
export interface TrainerCounters {
  step: number;
  adamT: number;
  rngState: number;
  skipped: number;
  lrScale: number; // backtracking multiplies the scheduled LR by this
  emaUpdates?: number;
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

export interface RunOptions {
  untilStep?: number; // default: the schedule's horizon
  stopAt?: number; // epoch ms: stop early (a commit window is coming)
  shouldStop?: () => boolean;
  onStep?: (r: StepReport) => void | Promise<void>;
}

export interface TrainSummary {
  steps: number; // the step reached
  stepsRun: number;
  finalLoss: number; // mean of the last few steps' loss
  tokens: number;
  seconds: number;
  skipped: number;
  stoppedEarly: boolean;
  history: StepReport[];
}

export class Trainer {
  readonly optimizer: AdamW;
  readonly ema?: Ema;
  private readonly rng: Rng;
  step = 0;
  skipped = 0;
  lrScale = 1;

  constructor(
    private readonly cfg: GptConfig,
    private readonly weights: Weights,
    readonly train: TrainConfig,
    private readonly data: TokenIds,
    resume?: TrainerCounters,
  ) {
    if (data.length < cfg.seqLen + 2) {
      throw new Error(`training data has ${data.length} tokens; at least ${cfg.seqLen + 2} are needed`);
    }
    this.optimizer = new AdamW(weights, { beta1: train.beta1, beta2: train.beta2, eps: 1e-8, weightDecay: train.weightDecay, gradClip: train.gradClip });
    this.rng = new Rng(train.seed);
    if (train.emaDecay) this.ema = new Ema(weights, train.emaDecay, resume?.emaUpdates ?? 0);
    if (resume) {
      this.step = resume.step;
      this.optimizer.t = resume.adamT;
      this.rng.state = resume.rngState;
      this.skipped = resume.skipped;
      this.lrScale = resume.lrScale;
    }
  }

  counters(): TrainerCounters {
    return { step: this.step, adamT: this.optimizer.t, rngState: this.rng.state, skipped: this.skipped, lrScale: this.lrScale, emaUpdates: this.ema?.updates };
  }

  /** One optimisation step on a fresh random batch. */
  trainStep(): Omit<StepReport, 'tokensPerSec' | 'totalSteps'> {
    const T = this.cfg.seqLen;
    const starts = Array.from({ length: this.train.batchSize }, () => this.rng.int(this.data.length - T - 1));
    const lr = this.lrScale * cosineWithWarmup(this.step, this.train.learningRate, this.train.warmupSteps, this.train.steps);
    const { loss, grads } = lossAndGrads(this.weights, this.cfg, this.data, starts);
    let gradNorm = NaN;
    // A NaN/Inf batch is skipped, not applied: one bad batch must not poison the weights.
    if (Number.isFinite(loss)) gradNorm = this.optimizer.apply(grads, lr);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) this.skipped += 1;
    else this.ema?.update(this.weights);
    tf.dispose(grads);
    this.step += 1;
    return { step: this.step, loss, lr, gradNorm, skipped: this.skipped };
  }

  /** Trains until `untilStep` (or a stop condition), calling onStep after each step (await it: heartbeats go out there). */
  async run(opts: RunOptions = {}): Promise<TrainSummary> {
    const until = opts.untilStep ?? this.train.steps;
    const tokensPerStep = this.train.batchSize * this.cfg.seqLen;
    const history: StepReport[] = [];
    const t0 = performance.now();
    let windowStart = t0;
    let stoppedEarly = false;
    while (this.step < until) {
      if ((opts.stopAt !== undefined && Date.now() >= opts.stopAt) || opts.shouldStop?.()) {
        stoppedEarly = true;
        break;
      }
      const r = this.trainStep();
      const now = performance.now();
      const report: StepReport = { ...r, totalSteps: until, tokensPerSec: tokensPerStep / ((now - windowStart) / 1000) };
      windowStart = now;
      history.push(report);
      if (opts.onStep) await opts.onStep(report);
    }
    const tail = history.slice(-Math.min(10, history.length)).filter((h) => Number.isFinite(h.loss));
    return {
      steps: this.step,
      stepsRun: history.length,
      finalLoss: tail.length ? tail.reduce((a, h) => a + h.loss, 0) / tail.length : NaN,
      tokens: history.length * tokensPerStep,
      seconds: (performance.now() - t0) / 1000,
      skipped: this.skipped,
      stoppedEarly,
      history,
    };
  }

  dispose(): void {
    this.optimizer.dispose();
    this.ema?.dispose();
  }
}

/**
 * Cross-entropy, auxiliary loss and gradients of one batch of windows starting at `starts`.
 * The unit of work a data-parallel replica does; the caller disposes the gradients.
 */
export function lossAndGrads(weights: Weights, cfg: GptConfig, data: TokenIds, starts: number[]): { loss: number; aux: number; grads: tf.NamedTensorMap } {
  const { ids, targets } = windowsToTensors(data, starts, cfg.seqLen);
  let loss = NaN;
  let aux = 0;
  const { value, grads } = tf.variableGrads(() => {
    const terms = trainingLoss(weights, cfg, ids, targets);
    loss = terms.ce.dataSync()[0];
    aux = terms.aux.dataSync()[0];
    return terms.total;
  });
  ids.dispose();
  targets.dispose();
  // The total is what was minimised; a non-finite one (even with a finite CE) poisons the step.
  if (!Number.isFinite(value.dataSync()[0])) loss = NaN;
  value.dispose();
  return { loss, aux, grads };
}
