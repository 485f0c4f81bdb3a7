// The training loop, in the spirit of nanoGPT's train.py: sample a batch, forward, backward,
// clip, AdamW step on a cosine schedule; report loss, LR, gradient norm and tokens/s every step.
// A step may accumulate several micro-batches, and on the wasm backend each micro-batch is split
// across data-parallel replicas (parallel.ts), one per core. A step with a non-finite loss or
// gradient is skipped; after `skipLimit` in a row the trainer goes back to the last good state with
// a lower LR. Its whole state (step, optimizer moments, RNG, LR scale) can be saved and restored, so
// training N steps, stopping, and resuming for N more gives the same weights as 2N steps straight.
// What a step minimises is an Objective over items drawn at random: text windows for pre-training
// (the default), fine-tuning examples for SFT and DPO (finetune/objectives.ts); `weights` are the
// tensors it trains (the whole model, or a fine-tuning method's subset or adapters).
// Knows nothing about Temporal: the train activity calls it and heartbeats from onStep.
import * as tf from '@tensorflow/tfjs-core';
import { parameterCount, trainingLoss, type GptConfig, type Weights } from './gpt';
import { windowsToTensors } from './evaluate';
import { AdamW, cosineWithWarmup, globalNorm } from './optimizer';
import { Ema } from './ema';
import { replicaCount, ReplicaPool, splitAcross, type LossAndGrads } from './parallel';
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
  threads?: number | 'auto'; // data-parallel replicas on wasm ('auto': one per core for big enough steps); default 1
  gradAccumSteps?: number; // micro-batches of batchSize windows per optimizer step; default 1
  skipLimit?: number; // consecutive skipped steps before restoring the last good state; default 8
  lrBackoff?: number; // lrScale multiplier on each such restore; default 0.5
}

function checkTrainConfig(t: TrainConfig): void {
  const bad = (field: string, value: unknown, want: string) =>
    new Error(`training.${field} must be ${want} (got ${JSON.stringify(value)})`);
  if (!Number.isInteger(t.batchSize) || t.batchSize < 1) throw bad('batchSize', t.batchSize, 'an integer ≥ 1');
  if (t.threads !== undefined && t.threads !== 'auto' && (!Number.isInteger(t.threads) || t.threads < 1))
    throw bad('threads', t.threads, "'auto' or an integer ≥ 1");
  if (t.gradAccumSteps !== undefined && (!Number.isInteger(t.gradAccumSteps) || t.gradAccumSteps < 1))
    throw bad('gradAccumSteps', t.gradAccumSteps, 'an integer ≥ 1');
  if (t.skipLimit !== undefined && (!Number.isInteger(t.skipLimit) || t.skipLimit < 1))
    throw bad('skipLimit', t.skipLimit, 'an integer ≥ 1');
  if (t.lrBackoff !== undefined && !(t.lrBackoff > 0 && t.lrBackoff <= 1))
    throw bad('lrBackoff', t.lrBackoff, 'in (0, 1]');
}

/** Everything besides weights and moments that training needs to continue exactly. */
export interface TrainerCounters {
  step: number;
  adamT: number;
  rngState: number;
  skipped: number;
  lrScale: number; // backtracking multiplies the scheduled LR by this
  emaUpdates?: number;
  restores?: number;
  consecutiveSkips?: number;
}

/**
 * What a step minimises: each micro-batch is a list of items drawn uniformly from [0, size), and
 * lossAndGrads returns the step's mean loss and the gradients of `weights` (weighted by each
 * micro-batch's share of totalItems, as batchLossAndGrads), plus any metrics to report.
 */
export interface Objective {
  size: number;
  tokensPerItem: number; // for tokens/s
  lossAndGrads(weights: Weights, microBatches: number[][], totalItems: number): LossAndGrads & { metrics?: Metrics };
}

/** Extra per-step figures an objective reports (DPO: reward margin, preference accuracy). */
export type Metrics = Record<string, number>;

export interface StepReport {
  step: number; // steps completed, 1-based
  totalSteps: number;
  loss: number; // cross-entropy of the step's windows
  auxLoss: number; // MoE load-balancing loss (0 for a dense model)
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  skipped: number; // non-finite steps skipped so far
  restores: number; // returns to the last good state so far (after skipLimit skips in a row)
  metrics?: Metrics; // the objective's own figures for this step
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
  restores: number;
  stoppedEarly: boolean;
  history: StepReport[];
}

export class Trainer {
  readonly optimizer: AdamW;
  readonly ema?: Ema;
  private readonly rng: Rng;
  private readonly accumSteps: number;
  private readonly skipLimit: number;
  private readonly lrBackoff: number;
  private readonly replicas?: ReplicaPool; // worker threads; the main thread is the first replica
  private readonly objective: Objective;
  private lastGood?: Snapshot;
  step = 0;
  skipped = 0;
  restores = 0;
  consecutiveSkips = 0;
  lrScale = 1;
  /** Tests and drills: make the batch at this (0-based) step count as non-finite, as a broken batch would. */
  plantNonFinite?: (step: number) => boolean;

  constructor(
    cfg: GptConfig,
    private readonly weights: Weights,
    readonly train: TrainConfig,
    data: TokenIds | Objective,
    resume?: TrainerCounters,
  ) {
    checkTrainConfig(train);
    if (!isObjective(data) && data.length < cfg.seqLen + 2) {
      throw new Error(`training data has ${data.length} tokens; at least ${cfg.seqLen + 2} are needed`);
    }
    if (isObjective(data) && data.size < 1) throw new Error('training data has no examples');
    this.objective = isObjective(data)
      ? data
      : {
          size: data.length - cfg.seqLen - 1,
          tokensPerItem: cfg.seqLen,
          lossAndGrads: (w, microBatches, total) => batchLossAndGrads(w, cfg, data, microBatches, total),
        };
    this.accumSteps = train.gradAccumSteps ?? 1;
    this.skipLimit = train.skipLimit ?? 8;
    this.lrBackoff = train.lrBackoff ?? 0.5;
    this.optimizer = new AdamW(weights, {
      beta1: train.beta1,
      beta2: train.beta2,
      eps: 1e-8,
      weightDecay: train.weightDecay,
      gradClip: train.gradClip,
    });
    this.rng = new Rng(train.seed);
    if (train.emaDecay) this.ema = new Ema(weights, train.emaDecay, resume?.emaUpdates ?? 0);
    if (resume) {
      this.step = resume.step;
      this.optimizer.t = resume.adamT;
      this.rng.state = resume.rngState;
      this.skipped = resume.skipped;
      this.lrScale = resume.lrScale;
      this.restores = resume.restores ?? 0;
      this.consecutiveSkips = resume.consecutiveSkips ?? 0;
    }
    // Replicas split text windows only; fine-tuning objectives run on the main thread.
    const replicas = isObjective(data)
      ? 1
      : replicaCount(train.threads, train.batchSize, parameterCount(weights) * train.batchSize * cfg.seqLen);
    if (replicas > 1 && !isObjective(data)) this.replicas = new ReplicaPool(cfg, weights, data, replicas - 1);
  }

  /** Tensors held by the worker replicas (the main thread's are tf.memory()), for leak checks. */
  replicaMemory(): { numTensors: number; numBytes: number }[] {
    return this.replicas?.memory() ?? [];
  }

  /** Replicas computing each micro-batch: the main thread plus worker threads. */
  get threads(): number {
    return 1 + (this.replicas?.workers ?? 0);
  }

  counters(): TrainerCounters {
    return {
      step: this.step,
      adamT: this.optimizer.t,
      rngState: this.rng.state,
      skipped: this.skipped,
      lrScale: this.lrScale,
      emaUpdates: this.ema?.updates,
      restores: this.restores,
      consecutiveSkips: this.consecutiveSkips,
    };
  }

  /** One optimisation step on fresh random micro-batches. */
  trainStep(): Omit<StepReport, 'tokensPerSec' | 'totalSteps'> {
    const microBatches = Array.from({ length: this.accumSteps }, () =>
      Array.from({ length: this.train.batchSize }, () => this.rng.int(this.objective.size)),
    );
    const lr =
      this.lrScale * cosineWithWarmup(this.step, this.train.learningRate, this.train.warmupSteps, this.train.steps);
    const { aux, grads, metrics, ...rest } = this.lossAndGrads(microBatches);
    const loss = this.plantNonFinite?.(this.step) ? NaN : rest.loss;
    const gradNorm = Number.isFinite(loss) ? globalNorm(this.weights, grads) : NaN;
    if (Number.isFinite(loss) && Number.isFinite(gradNorm)) {
      // Remember where this finite step started: weights known to give a finite loss.
      this.lastGood ??= new Snapshot(this.stateTensors());
      this.lastGood.save(this.optimizer.t, this.ema?.updates ?? 0);
      this.optimizer.apply(grads, lr, gradNorm);
      this.ema?.update(this.weights);
      this.consecutiveSkips = 0;
    } else {
      // A NaN/Inf step is skipped, not applied: one bad batch must not poison the weights.
      // Any non-finite micro-batch skips the whole step, so `skipped` counts steps.
      this.skipped += 1;
      this.consecutiveSkips += 1;
      if (this.consecutiveSkips >= this.skipLimit) this.restoreLastGood();
    }
    tf.dispose(grads);
    this.step += 1;
    return {
      step: this.step,
      loss,
      auxLoss: aux,
      lr,
      gradNorm,
      skipped: this.skipped,
      restores: this.restores,
      ...(metrics ? { metrics } : {}),
    };
  }

  /**
   * Mean loss and gradients over the step's micro-batches. With replicas, every micro-batch is split
   * across them: the workers start on their parts, the main thread computes its own, then adds theirs.
   */
  private lossAndGrads(microBatches: number[][]): LossAndGrads & { metrics?: Metrics } {
    const windows = microBatches.length * this.train.batchSize;
    if (!this.replicas) return this.objective.lossAndGrads(this.weights, microBatches, windows);
    const shares = splitAcross(microBatches, this.threads);
    this.replicas.start(this.weights, shares.slice(1), windows);
    const local = this.objective.lossAndGrads(this.weights, shares[0], windows);
    return this.replicas.finish(this.weights, local);
  }

  /** After skipLimit skipped steps in a row: back to the last good state, with a lower LR. */
  private restoreLastGood(): void {
    // Without a snapshot no step has been applied since this trainer started: the state is unchanged.
    const saved = this.lastGood?.restore();
    if (saved) {
      this.optimizer.t = saved.adamT;
      if (this.ema) this.ema.updates = saved.emaUpdates;
    }
    this.lrScale *= this.lrBackoff;
    this.restores += 1;
    this.consecutiveSkips = 0;
  }

  private stateTensors(): tf.Variable[] {
    return [...this.weights.values(), ...this.optimizer.state(), ...(this.ema ? this.ema.shadow.values() : [])];
  }

  /** Trains until `untilStep` (or a stop condition), calling onStep after each step (await it: heartbeats go out there). */
  async run(opts: RunOptions = {}): Promise<TrainSummary> {
    const until = opts.untilStep ?? this.train.steps;
    const tokensPerStep = this.train.batchSize * this.accumSteps * this.objective.tokensPerItem;
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
      const report: StepReport = {
        ...r,
        totalSteps: until,
        tokensPerSec: tokensPerStep / ((now - windowStart) / 1000),
      };
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
      restores: this.restores,
      stoppedEarly,
      history,
    };
  }

  /** Frees the optimizer state, EMA and snapshot, and stops the worker replicas. */
  dispose(): void {
    this.replicas?.dispose();
    this.optimizer.dispose();
    this.ema?.dispose();
    this.lastGood?.dispose();
  }
}

function isObjective(data: TokenIds | Objective): data is Objective {
  return 'lossAndGrads' in data;
}

/**
 * A copy of the training state (weights, AdamW moments, EMA) taken before each applied step.
 * tfjs never changes a tensor's data in place (assign swaps buffers), so saving shares the live
 * buffers instead of copying them: it costs one more copy's worth of memory, not time.
 */
class Snapshot {
  private readonly saved: tf.Variable[];
  private counters = { adamT: 0, emaUpdates: 0 };

  constructor(private readonly live: tf.Variable[]) {
    this.saved = live.map((v) => tf.variable(v, false));
  }

  save(adamT: number, emaUpdates: number): void {
    this.live.forEach((v, i) => this.saved[i].assign(v));
    this.counters = { adamT, emaUpdates };
  }

  restore(): { adamT: number; emaUpdates: number } {
    this.live.forEach((v, i) => v.assign(this.saved[i]));
    return this.counters;
  }

  dispose(): void {
    for (const v of this.saved) v.dispose();
  }
}

/**
 * Loss, auxiliary loss and gradients of several micro-batches, each weighted by its share of the
 * step's `totalWindows` (so replicas' results add up to the step's mean). Summed in order.
 */
export function batchLossAndGrads(
  weights: Weights,
  cfg: GptConfig,
  data: TokenIds,
  microBatches: number[][],
  totalWindows: number,
): LossAndGrads {
  return accumulate(weights, microBatches, totalWindows, (starts) => lossAndGrads(weights, cfg, data, starts));
}

/** Sums `part`'s loss, metrics and gradients over micro-batches, each weighted by its share of `totalItems`. */
export function accumulate(
  weights: Weights,
  microBatches: number[][],
  totalItems: number,
  part: (items: number[]) => LossAndGrads & { metrics?: Metrics },
): LossAndGrads & { metrics?: Metrics } {
  let loss = 0;
  let aux = 0;
  let metrics: Metrics | undefined;
  let sums: tf.NamedTensorMap | undefined;
  for (const items of microBatches) {
    const p = part(items);
    const share = items.length / totalItems;
    loss += p.loss * share;
    aux += p.aux * share;
    if (p.metrics) {
      metrics ??= {};
      for (const [k, v] of Object.entries(p.metrics)) metrics[k] = (metrics[k] ?? 0) + v * share;
    }
    const prev = sums;
    sums = tf.tidy(() => {
      const next: tf.NamedTensorMap = {};
      for (const w of weights.values()) {
        const g = share === 1 ? p.grads[w.name] : tf.mul(p.grads[w.name], share);
        next[w.name] = prev ? tf.add(prev[w.name], g) : tf.keep(g);
      }
      return next;
    });
    if (share !== 1) tf.dispose(p.grads);
    if (prev) tf.dispose(prev);
  }
  if (!sums) throw new Error('a step needs at least one micro-batch');
  return { loss, aux, grads: sums, ...(metrics ? { metrics } : {}) };
}

/**
 * Cross-entropy, auxiliary loss and gradients of one batch of windows starting at `starts`.
 * The unit of work a data-parallel replica does; the caller disposes the gradients.
 */
export function lossAndGrads(
  weights: Weights,
  cfg: GptConfig,
  data: TokenIds,
  starts: number[],
): { loss: number; aux: number; grads: tf.NamedTensorMap } {
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
