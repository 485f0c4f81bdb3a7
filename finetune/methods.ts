// Which weights train when fine-tuning (training.finetune.method): all of them, the last N blocks,
// or LoRA adapters beside a frozen base (Hu et al. 2021: W·x + (alpha/r)·B·A·x, A small random, B
// zero, so training starts exactly at the base). The model the subnet publishes is always plain
// weights in the built-in layout: adapters are merged into them (W + scale·A·B).
import * as tf from '@tensorflow/tfjs-core';
import { InvalidInputError } from '../common/config';
import { isMoeLayer } from '../model/moe';
import { variableOf, type Adapters, type GptConfig, type Weights } from '../model/gpt';
import { Rng } from '../model/rng';
import type { LoraMethodInput, MethodInput } from './config';

/** A base model prepared for fine-tuning: what the forward pass uses, and what the optimizer updates. */
export interface FinetuneModel {
  weights: Weights; // the whole model (the base; updated in place by full / lastLayers)
  trainable: Weights; // what the optimizer, EMA and saved state hold: a subset of weights, or the adapters (+ embeddings)
  lora?: LoraLayout; // set for LoRA: how `trainable` maps onto adapters
}

/** One adapted matrix: its adapter's tensors in `trainable` are `<weight>.lora_A` [in, r] and `<weight>.lora_B` [r, out]. */
export interface LoraSlot {
  weight: string; // e.g. h.0.attn.c_attn.weight
  rank: number;
  scale: number; // alpha / rank
}
export type LoraLayout = LoraSlot[];

const field = 'training.finetune.method';

/** The ranks of one group by layer, from a number, a per-layer list, or {first, last} rising linearly. */
export function layerRanks(rank: number | number[] | { first: number; last: number }, nLayer: number, where: string) {
  if (typeof rank === 'number') return Array.from({ length: nLayer }, () => rank);
  if (Array.isArray(rank)) {
    if (rank.length !== nLayer)
      throw new InvalidInputError(
        `${where}.rank lists ${rank.length} ranks but the base model has ${nLayer} layers (model.nLayer)`,
      );
    return rank;
  }
  return Array.from({ length: nLayer }, (_, l) =>
    Math.round(rank.first + ((rank.last - rank.first) * l) / Math.max(1, nLayer - 1)),
  );
}

/** The matrices a LoRA method adapts, with rank and scale; MoE blocks adapt every expert's MLP (not the router). */
export function loraLayout(cfg: GptConfig, method: LoraMethodInput): LoraLayout {
  const slots: LoraLayout = [];
  const att = method.attention && layerRanks(method.attention.rank, cfg.nLayer, `${field}.attention`);
  const mlp = method.mlp && layerRanks(method.mlp.rank, cfg.nLayer, `${field}.mlp`);
  for (let l = 0; l < cfg.nLayer; l++) {
    const p = `h.${l}.`;
    const add = (weight: string, rank: number, alpha: number) => {
      if (rank > 0) slots.push({ weight, rank, scale: alpha / rank });
    };
    if (att) for (const m of ['attn.c_attn', 'attn.c_proj']) add(`${p}${m}.weight`, att[l], method.attention!.alpha);
    if (mlp) {
      const prefixes = isMoeLayer(cfg.moe, l)
        ? Array.from({ length: cfg.moe!.experts }, (_, e) => `${p}moe.experts.${e}.`)
        : [`${p}mlp.`];
      for (const q of prefixes) for (const m of ['c_fc', 'c_proj']) add(`${q}${m}.weight`, mlp[l], method.mlp!.alpha);
    }
  }
  return slots;
}

/** Prepares `base` (the caller's, kept) for `method`: picks its trainable weights or adds adapters. */
export function prepareFinetune(cfg: GptConfig, base: Weights, method: MethodInput): FinetuneModel {
  if (method.kind === 'full') return { weights: base, trainable: base };
  if (method.kind === 'lastLayers') {
    if (method.layers > cfg.nLayer)
      throw new InvalidInputError(
        `${field}.layers (${method.layers}) is more than the base model's ${cfg.nLayer} layers (model.nLayer)`,
      );
    const first = cfg.nLayer - method.layers;
    const trains = (name: string) =>
      name.startsWith('ln_f.') || (name.startsWith('h.') && Number(name.split('.')[1]) >= first);
    return { weights: base, trainable: new Map([...base].filter(([name]) => trains(name))) };
  }
  const lora = loraLayout(cfg, method);
  const rng = new Rng(method.seed);
  const trainable: Weights = new Map();
  for (const slot of lora) {
    const [fanIn, fanOut] = base.get(slot.weight)!.shape;
    // PEFT's default: A ~ kaiming_uniform(a=√5) = U(±1/√fan_in); B = 0, so A·B = 0 at the start.
    const a = Float32Array.from({ length: fanIn * slot.rank }, () => (2 * rng.next() - 1) / Math.sqrt(fanIn));
    trainable.set(`${slot.weight}.lora_A`, variableOf(tf.tensor2d(a, [fanIn, slot.rank]), true));
    trainable.set(`${slot.weight}.lora_B`, variableOf(tf.zeros([slot.rank, fanOut]), true));
  }
  if (method.trainEmbeddings) for (const name of ['wte', 'wpe']) trainable.set(name, base.get(name)!);
  return { weights: base, trainable: new Map([...trainable].sort(([x], [y]) => (x < y ? -1 : 1))), lora };
}

/** The adapters as the forward pass takes them, from LoRA tensors (the trainable ones, or an EMA of them). */
export function adaptersOf(layout: LoraLayout | undefined, tensors: Weights): Adapters | undefined {
  if (!layout) return undefined;
  return new Map(
    layout.map((s) => [
      s.weight,
      { a: tensors.get(`${s.weight}.lora_A`)!, b: tensors.get(`${s.weight}.lora_B`)!, scale: s.scale },
    ]),
  );
}

/**
 * The full model in the built-in layout with `trainable` put in: adapters merged (W + scale·A·B),
 * other trainable tensors (an EMA's, say) in place of the base's. New variables: the caller disposes them.
 */
export function mergedWeights(m: FinetuneModel, trainable: Weights = m.trainable): Weights {
  const adapters = adaptersOf(m.lora, trainable);
  const out: Weights = new Map();
  for (const [name, w] of m.weights) {
    const adapter = adapters?.get(name);
    const source = trainable.get(name) ?? w;
    out.set(
      name,
      adapter
        ? variableOf(
            tf.tidy(() => tf.add(source, tf.mul(tf.matMul(adapter.a, adapter.b), adapter.scale))),
            false,
          )
        : tf.variable(source, false),
    );
  }
  return out;
}

/** Trainable and frozen parameters, and the bytes training keeps per trainable one (weight, grad, moments, snapshot, EMA). */
export function finetuneMemory(m: FinetuneModel, opts: { ema: boolean; reference: boolean }) {
  const count = (w: Weights) => [...w.values()].reduce((n, t) => n + t.size, 0);
  const trainable = count(m.trainable);
  const base = count(m.weights);
  const own = m.lora
    ? trainable - (m.trainable.has('wte') ? m.weights.get('wte')!.size + m.weights.get('wpe')!.size : 0)
    : 0;
  // Per trainable float: gradient, 2 moments, the last-good snapshot of weight + moments (3), EMA (+ its snapshot).
  const perTrainable = 1 + 2 + 3 + (opts.ema ? 2 : 0);
  // DPO's frozen reference is the base itself under LoRA (adapters off), a copy otherwise.
  const referenceCopy = opts.reference && !m.lora ? base : 0;
  return {
    trainableParameters: trainable,
    totalParameters: base + own,
    trainableFraction: trainable / (base + own),
    stateBytes: 4 * (base + own + perTrainable * trainable + referenceCopy),
  };
}
