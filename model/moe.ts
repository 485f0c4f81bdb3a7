// Routing for mixture-of-experts feed-forward layers (Switch Transformer / Mixtral style): which
// experts each token goes to, with what gate, and the auxiliary load-balancing loss. The experts
// themselves are GPT-2 MLPs in gpt.ts.
//
// The wasm backend has no gradient for tf.gather, so nothing here gathers: the discrete choices
// (top-k, capacity) are 0/1 masks [tokens, experts] computed without gradient, and gpt.ts runs
// every expert on every token, weighted by its masked gate (zero for tokens it does not serve).
import * as tf from '@tensorflow/tfjs-core';
import type { CustomGradientFunc } from '@tensorflow/tfjs-core/dist/engine';

export interface MoeConfig {
  experts: number; // E experts per MoE layer
  topK: number; // experts each token is sent to
  capacityFactor: number; // capacity = ceil(capacityFactor · tokens · topK / E) tokens per expert per batch
  auxLossWeight: number; // training minimises CE + auxLossWeight · aux
  every: number; // the MoE layers are blocks every, 2·every, … (1-based); the others stay dense
}

/** Whether block `l` (0-based) has a MoE feed-forward instead of the dense MLP. */
export function isMoeLayer(moe: MoeConfig | null | undefined, l: number): boolean {
  return !!moe && (l + 1) % moe.every === 0;
}

/** The config's problems, each naming the field and its value (empty when valid). */
export function moeConfigProblems(moe: MoeConfig, nLayer: number): string[] {
  const problems: string[] = [];
  const intIn = (field: keyof MoeConfig, min: number, max: number) => {
    const v = moe[field];
    if (!Number.isInteger(v) || v < min || v > max)
      problems.push(`model.moe.${field} (${v}) must be an integer from ${min} to ${max}`);
  };
  intIn('experts', 2, 1024);
  intIn('topK', 1, 1024);
  intIn('every', 1, 1024);
  if (moe.topK > moe.experts)
    problems.push(`model.moe.topK (${moe.topK}) must be at most model.moe.experts (${moe.experts})`);
  if (moe.every > nLayer)
    problems.push(`model.moe.every (${moe.every}) must be at most model.nLayer (${nLayer}), or no layer would be MoE`);
  if (!(moe.capacityFactor > 0) || !Number.isFinite(moe.capacityFactor))
    problems.push(`model.moe.capacityFactor (${moe.capacityFactor}) must be a finite number > 0`);
  if (!(moe.auxLossWeight >= 0) || !Number.isFinite(moe.auxLossWeight))
    problems.push(`model.moe.auxLossWeight (${moe.auxLossWeight}) must be a finite number ≥ 0`);
  return problems;
}

/** Most tokens an expert takes in one forward pass over `tokens` tokens. */
export function expertCapacity(moe: MoeConfig, tokens: number): number {
  return Math.ceil((moe.capacityFactor * tokens * moe.topK) / moe.experts);
}

export interface Routing {
  gates: tf.Tensor2D; // [N, E] weight of each expert's output per token; 0 where not routed or dropped
  chosen: tf.Tensor2D; // [N, E] 1 where the expert is among the token's top-k
  kept: tf.Tensor2D; // [N, E] chosen and within the expert's capacity
  aux: tf.Scalar; // Switch load-balancing loss, 1 when perfectly balanced
}

/** Routes N tokens given the router's softmax probabilities [N, E]. */
export function route(probs: tf.Tensor2D, moe: MoeConfig): Routing {
  const [N, E] = probs.shape;
  const chosen = withoutGradient(probs, (p) => topKMask(p, moe.topK));
  const kept = withoutGradient(chosen, (c) => withinCapacity(c, expertCapacity(moe, N)));
  const top = tf.mul(probs, chosen);
  // topK = 1: the gate is the raw probability, as in Switch, so cross-entropy trains the router.
  // topK > 1: renormalised over the chosen k, as in Mixtral (softmax over the top-k logits). Both
  // before capacity: a dropped choice loses its share rather than handing it to the other choices.
  const normalised = moe.topK === 1 ? top : tf.div(top, tf.sum(top, -1, true));
  const gates = tf.mul(normalised, kept) as tf.Tensor2D;
  // Switch: aux = E · Σ_e f_e · P_e, f_e = share of the N·k choices that picked e (before capacity;
  // no gradient), P_e = mean router probability of e (the gradient flows through it).
  const f = tf.div(tf.sum(chosen, 0), N * moe.topK);
  const P = tf.mean(probs, 0);
  const aux = tf.mul(E, tf.sum(tf.mul(f, P))) as tf.Scalar;
  return { gates, chosen, kept, aux };
}

/** 1 at each row's k largest entries (ties: the lower index, as tf.topk). */
function topKMask(p: tf.Tensor2D, k: number): tf.Tensor2D {
  const { indices } = tf.topk(p, k); // [N, k]
  return tf.cast(tf.sum(tf.oneHot(indices, p.shape[1]), 1), 'float32') as tf.Tensor2D;
}

/**
 * Keeps, for each expert, the first `capacity` tokens that chose it, in token order (row-major
 * over batch and position). Token order keeps it causal: whether a token is dropped depends only
 * on the tokens before it, never on later positions of its own sequence.
 */
function withinCapacity(chosen: tf.Tensor2D, capacity: number): tf.Tensor2D {
  const position = tf.cumsum(chosen, 0); // 1-based place in the expert's queue
  return tf.mul(chosen, tf.cast(tf.lessEqual(position, capacity), 'float32')) as tf.Tensor2D;
}

/**
 * f(x) with a zero gradient to x (a stop-gradient). Ops inside a customGrad's forward are not
 * recorded on the tape, so topk and cumsum (no gradients we want) never reach backprop.
 */
function withoutGradient(x: tf.Tensor2D, f: (x: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad(((t: tf.Tensor) => ({
    value: f(t as tf.Tensor2D),
    gradFunc: () => tf.zerosLike(t),
  })) as unknown as CustomGradientFunc<tf.Tensor>);
  return op(x) as tf.Tensor2D;
}
