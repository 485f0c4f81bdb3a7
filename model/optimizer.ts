// AdamW with decoupled weight decay, global-norm gradient clipping, and the learning-rate schedule
// of Hugging Face's get_cosine_schedule_with_warmup (linear warmup, then cosine to zero).
import * as tf from '@tensorflow/tfjs-core';
import { variableOf, type Weights } from './gpt';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  gradClip: number; // max global L2 norm; 0 disables clipping
}

/** Learning rate at `step` (0-based) of `total`, as get_cosine_schedule_with_warmup. */
export function cosineWithWarmup(step: number, peakLr: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return (peakLr * step) / Math.max(1, warmupSteps);
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  return peakLr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}

/** Global L2 norm of the gradients (NaN if any is non-finite). */
export function globalNorm(weights: Weights, grads: tf.NamedTensorMap): number {
  return tf.tidy(() => {
    // variableGrads keys gradients by the variables' own (auto-generated) names. Summing in the
    // weights' (sorted) order keeps the norm bit-identical across a save and reload.
    const sq = [...weights.values()].map((w) => tf.sum(tf.square(grads[w.name])));
    return Math.sqrt(tf.addN(sq).dataSync()[0]);
  });
}

export class AdamW {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  t = 0; // updates applied so far (for bias correction)

  constructor(
    private readonly weights: Weights,
    private readonly opts: AdamWOptions,
  ) {
    for (const [name, w] of weights) {
      this.m.set(name, variableOf(tf.zerosLike(w), false));
      this.v.set(name, variableOf(tf.zerosLike(w), false));
    }
  }

  /**
   * Applies one update and returns the gradient's global norm before clipping. A non-finite norm
   * applies nothing (not even the step count): NaN/Inf gradients must never reach the weights.
   */
  apply(grads: tf.NamedTensorMap, lr: number, norm = globalNorm(this.weights, grads)): number {
    if (!Number.isFinite(norm)) return norm;
    const { beta1, beta2, eps, weightDecay, gradClip } = this.opts;
    this.t += 1;
    const bc1 = 1 - beta1 ** this.t;
    const bc2 = 1 - beta2 ** this.t;
    return tf.tidy(() => {
      const scale = gradClip > 0 && norm > gradClip ? gradClip / norm : 1;
      for (const [name, w] of this.weights) {
        const grad = grads[w.name];
        const g = scale === 1 ? grad : tf.mul(grad, scale);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
        // Decoupled decay on matrices only (not biases, norms): as nanoGPT.
        const decay = w.rank >= 2 && weightDecay > 0 ? tf.mul(w, weightDecay) : undefined;
        w.assign(tf.sub(w, tf.mul(decay ? tf.add(update, decay) : update, lr)));
      }
      return norm;
    });
  }

  /** Every tensor of the optimizer's state, for snapshots. */
  state(): tf.Variable[] {
    return [...this.m.values(), ...this.v.values()];
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
  }
}
