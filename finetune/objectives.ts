// What fine-tuning minimises, as Objectives for the shared Trainer (model/trainer.ts), and the
// held-out evaluations that go with them:
//  - SFT: cross-entropy over the response tokens only (the mask zeroes prompt positions, so their
//    gradient is exactly zero);
//  - DPO (Rafailov et al. 2023): −log σ(β·((πc − rc) − (πr − rr))), π/r the summed log-probs of the
//    response tokens under the policy and the frozen reference (the base, no gradient).
import * as tf from '@tensorflow/tfjs-core';
import { forwardWithAux, type Adapters, type GptConfig, type Weights } from '../model/gpt';
import { accumulate, type Objective } from '../model/trainer';
import { adaptersOf, type FinetuneModel } from './methods';
import { sequenceTensors, type PreferenceSequences, type Sequence } from './sequences';

/** Mean negative log-likelihood of the targets where mask = 1 (logits [N, V], targets [N], mask [N]). */
export function maskedCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, mask: tf.Tensor1D): tf.Scalar {
  const nll = tokenNll(logits, targets);
  return tf.div(tf.sum(tf.mul(nll, mask)), tf.maximum(tf.sum(mask), 1)) as tf.Scalar;
}

/** Each row's summed log-prob of its masked targets: [B] for logits [B·T, V]. */
export function sequenceLogProbs(logits: tf.Tensor2D, targets: tf.Tensor1D, mask: tf.Tensor1D, B: number): tf.Tensor1D {
  return tf.sum(tf.reshape(tf.mul(tf.neg(tokenNll(logits, targets)), mask), [B, -1]), 1) as tf.Tensor1D;
}

function tokenNll(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  const logp = tf.logSoftmax(logits);
  return tf.neg(tf.sum(tf.mul(logp, tf.cast(tf.oneHot(targets, logits.shape[1]), 'float32')), -1)) as tf.Tensor1D;
}

/** Sigmoid DPO loss (mean over pairs) and each pair's reward margin β·((πc − rc) − (πr − rr)). */
export function dpoLoss(
  policyChosen: tf.Tensor1D,
  policyRejected: tf.Tensor1D,
  refChosen: tf.Tensor1D,
  refRejected: tf.Tensor1D,
  beta: number,
): { loss: tf.Scalar; margins: tf.Tensor1D } {
  const margins = tf.mul(
    beta,
    tf.sub(tf.sub(policyChosen, refChosen), tf.sub(policyRejected, refRejected)),
  ) as tf.Tensor1D;
  // −log σ(z) = softplus(−z), stable for large |z|.
  return { loss: tf.mean(tf.softplus(tf.neg(margins))) as tf.Scalar, margins };
}

function withAux(cfg: GptConfig, loss: tf.Scalar, aux: tf.Scalar): tf.Scalar {
  return cfg.moe ? (tf.add(loss, tf.mul(cfg.moe.auxLossWeight, aux)) as tf.Scalar) : loss;
}

/** One micro-batch's loss, aux and gradients of `trainable`; `loss` reads the forward's tensors. */
function gradsOf(
  trainable: Weights,
  f: () => { total: tf.Scalar; loss: tf.Scalar; aux: tf.Scalar; metrics?: () => Record<string, number> },
) {
  let loss = NaN;
  let aux = 0;
  let metrics: Record<string, number> | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const r = f();
    loss = r.loss.dataSync()[0];
    aux = r.aux.dataSync()[0];
    metrics = r.metrics?.();
    return r.total;
  }, [...trainable.values()]);
  if (!Number.isFinite(value.dataSync()[0])) loss = NaN;
  value.dispose();
  return { loss, aux, grads, ...(metrics ? { metrics } : {}) };
}

/** SFT over `examples`: the loss counts response tokens only. */
export function sftObjective(cfg: GptConfig, model: FinetuneModel, examples: Sequence[]): Objective {
  return {
    size: examples.length,
    tokensPerItem: cfg.seqLen,
    lossAndGrads: (trainable, microBatches, total) =>
      accumulate(trainable, microBatches, total, (items) => {
        const { ids, targets, mask } = sequenceTensors(
          items.map((i) => examples[i]),
          cfg.seqLen,
        );
        try {
          return gradsOf(trainable, () => {
            const { logits, aux } = forwardWithAux(model.weights, cfg, ids, adaptersOf(model.lora, trainable));
            const loss = maskedCrossEntropy(logits, targets, mask);
            return { total: withAux(cfg, loss, aux), loss, aux };
          });
        } finally {
          tf.dispose([ids, targets, mask]);
        }
      }),
  };
}

/** The frozen reference for DPO: the base. Under LoRA it is the model with its adapters off; otherwise a copy taken now. */
export function referenceOf(model: FinetuneModel): Weights {
  if (model.lora && !model.trainable.has('wte')) return model.weights;
  return new Map([...model.weights].map(([name, w]) => [name, tf.variable(w, false)]));
}

/** Chosen rows then rejected rows, as one batch. */
function pairTensors(pairs: PreferenceSequences[], seqLen: number) {
  return sequenceTensors([...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)], seqLen);
}

/** DPO over preference pairs against `reference` (from referenceOf). Reports rewardMargin and preferenceAccuracy. */
export function dpoObjective(
  cfg: GptConfig,
  model: FinetuneModel,
  reference: Weights,
  pairs: PreferenceSequences[],
  beta: number,
): Objective {
  return {
    size: pairs.length,
    tokensPerItem: 2 * cfg.seqLen,
    lossAndGrads: (trainable, microBatches, total) =>
      accumulate(trainable, microBatches, total, (items) => {
        const batch = items.map((i) => pairs[i]);
        const B = batch.length;
        const { ids, targets, mask } = pairTensors(batch, cfg.seqLen);
        // Outside variableGrads: nothing is taped, the reference gets no gradient.
        const ref = tf.tidy(() => sequenceLogProbs(forwardWithAux(reference, cfg, ids).logits, targets, mask, 2 * B));
        try {
          return gradsOf(trainable, () => {
            const { logits, aux } = forwardWithAux(model.weights, cfg, ids, adaptersOf(model.lora, trainable));
            const pol = sequenceLogProbs(logits, targets, mask, 2 * B);
            const { loss, margins } = dpoLoss(
              tf.slice(pol, 0, B),
              tf.slice(pol, B, B),
              tf.slice(ref, 0, B),
              tf.slice(ref, B, B),
              beta,
            );
            return { total: withAux(cfg, loss, aux), loss, aux, metrics: () => marginMetrics(margins.dataSync()) };
          });
        } finally {
          tf.dispose([ids, targets, mask, ref]);
        }
      }),
  };
}

function marginMetrics(m: ArrayLike<number>): { rewardMargin: number; preferenceAccuracy: number } {
  let sum = 0;
  let right = 0;
  for (let i = 0; i < m.length; i++) {
    sum += m[i];
    if (m[i] > 0) right += 1;
  }
  return { rewardMargin: sum / m.length, preferenceAccuracy: right / m.length };
}

/** Held-out SFT loss: masked cross-entropy over every response token of the examples (nats per token). */
export function evaluateSft(
  weights: Weights,
  cfg: GptConfig,
  examples: Sequence[],
  opts: { batchSize: number; lora?: Adapters },
): { loss: number; tokens: number } {
  if (examples.length === 0) throw new Error('held-out data has no examples');
  let nll = 0;
  let tokens = 0;
  for (let i = 0; i < examples.length; i += opts.batchSize) {
    const { ids, targets, mask } = sequenceTensors(examples.slice(i, i + opts.batchSize), cfg.seqLen);
    const [sum, n] = tf.tidy(() => {
      const logits = forwardWithAux(weights, cfg, ids, opts.lora).logits;
      return [tf.sum(tf.mul(tokenNll(logits, targets), mask)).dataSync()[0], tf.sum(mask).dataSync()[0]];
    });
    tf.dispose([ids, targets, mask]);
    nll += sum;
    tokens += n;
  }
  return { loss: nll / tokens, tokens };
}

/**
 * Held-out DPO: mean loss, preference accuracy (the chosen response's implicit reward above the
 * rejected's: 0 for the reference itself), mean reward margin, and chosenLikelier: the share of pairs
 * whose chosen response the model finds more likely (meaningful before training too).
 */
export function evaluateDpo(
  weights: Weights,
  reference: Weights,
  cfg: GptConfig,
  pairs: PreferenceSequences[],
  opts: { batchSize: number; beta: number; lora?: Adapters },
): { loss: number; preferenceAccuracy: number; rewardMargin: number; chosenLikelier: number } {
  if (pairs.length === 0) throw new Error('held-out data has no preference pairs');
  let loss = 0;
  let right = 0;
  let margin = 0;
  let likelier = 0;
  for (let i = 0; i < pairs.length; i += opts.batchSize) {
    const batch = pairs.slice(i, i + opts.batchSize);
    const B = batch.length;
    const { ids, targets, mask } = pairTensors(batch, cfg.seqLen);
    const r = tf.tidy(() => {
      const pol = sequenceLogProbs(forwardWithAux(weights, cfg, ids, opts.lora).logits, targets, mask, 2 * B);
      const ref = sequenceLogProbs(forwardWithAux(reference, cfg, ids).logits, targets, mask, 2 * B);
      const d = dpoLoss(tf.slice(pol, 0, B), tf.slice(pol, B, B), tf.slice(ref, 0, B), tf.slice(ref, B, B), opts.beta);
      const chosenAhead = tf.sum(tf.cast(tf.greater(tf.slice(pol, 0, B), tf.slice(pol, B, B)), 'float32'));
      return { loss: d.loss.dataSync()[0], margins: d.margins.dataSync(), likelier: chosenAhead.dataSync()[0] };
    });
    tf.dispose([ids, targets, mask]);
    const m = marginMetrics(r.margins);
    loss += r.loss * B;
    right += m.preferenceAccuracy * B;
    margin += m.rewardMargin * B;
    likelier += r.likelier;
  }
  const n = pairs.length;
  return { loss: loss / n, preferenceAccuracy: right / n, rewardMargin: margin / n, chosenLikelier: likelier / n };
}
