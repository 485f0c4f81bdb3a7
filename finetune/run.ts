// One fine-tuning run put together, for the trainer's segments, its LR range test, its export and
// the bench: the base prepared for the method, the examples as token sequences, the objective the
// Trainer minimises and the held-out evaluation that goes with it.
import { createReadStream } from 'node:fs';
import * as readline from 'node:readline';
import * as tf from '@tensorflow/tfjs-core';
import { InvalidInputError } from '../common/config';
import type { GptConfig, Weights } from '../model/gpt';
import type { Tokenizer } from '../model/tokenizer';
import type { Objective } from '../model/trainer';
import type { FinetuneInput } from './config';
import type { PreferenceExample, SftExample } from './examples';
import { adaptersOf, finetuneMemory, prepareFinetune, type FinetuneModel } from './methods';
import { dpoObjective, evaluateDpo, evaluateSft, referenceOf, sftObjective } from './objectives';
import {
  checkExample,
  encodePreference,
  encodeSft,
  ExampleFormatError,
  type PreferenceSequences,
  type Sequence,
} from './sequences';

/** The dataset kind (DatasetRef.kind) each objective trains on. */
export const KIND_FOR: Record<FinetuneInput['objective'], 'sft' | 'preference'> = { sft: 'sft', dpo: 'preference' };

export type Encoded = { kind: 'sft'; examples: Sequence[] } | { kind: 'preference'; examples: PreferenceSequences[] };

/** Reads a split's .jsonl of examples (finetune/examples.ts), checking every line's shape. */
export async function readExamples(
  file: string,
  kind: 'sft' | 'preference',
): Promise<(SftExample | PreferenceExample)[]> {
  const out: (SftExample | PreferenceExample)[] = [];
  let n = 0;
  for await (const line of readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    n += 1;
    if (!line.trim()) continue;
    let x: unknown;
    try {
      x = JSON.parse(line);
    } catch (err) {
      throw new ExampleFormatError(`${file} line ${n}: not JSON (${(err as Error).message})`);
    }
    out.push(checkExample(kind, x, `${file} line ${n}`));
  }
  return out;
}

/** Examples as sequences for the model; ones with no response token left after truncation are dropped and counted. */
export function encodeExamples(
  kind: 'sft' | 'preference',
  examples: (SftExample | PreferenceExample)[],
  tokenizer: Tokenizer,
  seqLen: number,
): { encoded: Encoded; dropped: number } {
  if (kind === 'sft') {
    const seqs = examples.map((e) => encodeSft(e as SftExample, tokenizer, seqLen)).filter((s) => s !== null);
    return { encoded: { kind, examples: seqs }, dropped: examples.length - seqs.length };
  }
  const pairs = examples
    .map((e) => encodePreference(e as PreferenceExample, tokenizer, seqLen))
    .filter((s) => s !== null);
  return { encoded: { kind, examples: pairs }, dropped: examples.length - pairs.length };
}

export interface FinetuneEval {
  loss: number; // SFT: masked cross-entropy (nats per response token); DPO: the DPO loss
  tokens?: number;
  preferenceAccuracy?: number; // DPO: share of pairs whose chosen reward beats the rejected one's
  rewardMargin?: number;
  chosenLikelier?: number; // DPO: share of pairs whose chosen response the model finds more likely
}

export class FinetuneRun {
  readonly model: FinetuneModel;
  /** DPO's frozen reference (the base); under LoRA the base weights themselves. */
  readonly reference?: Weights;

  constructor(
    readonly cfg: GptConfig,
    base: Weights,
    readonly ft: FinetuneInput,
    /** DPO resuming full or last-layers training: `base` holds trained weights, so the reference is loaded apart (the run disposes it). */
    reference?: Weights,
  ) {
    this.model = prepareFinetune(cfg, base, ft.method);
    if (ft.objective === 'dpo') this.reference = reference ?? referenceOf(this.model);
    else if (reference) tf.dispose([...reference.values()]);
  }

  /** Whether the DPO reference must come from the base apart from the training weights (see the constructor). */
  static needsSeparateReference(ft: FinetuneInput): boolean {
    return ft.objective === 'dpo' && !(ft.method.kind === 'lora' && !ft.method.trainEmbeddings);
  }

  objective(train: Encoded): Objective {
    this.check(train, 'training');
    return train.kind === 'sft'
      ? sftObjective(this.cfg, this.model, train.examples)
      : dpoObjective(this.cfg, this.model, this.reference!, train.examples, this.ft.dpo.beta);
  }

  /** Held-out evaluation of the trainable tensors given (the live ones, or an EMA shadow of them). */
  evaluate(heldOut: Encoded, batchSize: number, trainable: Weights = this.model.trainable): FinetuneEval {
    this.check(heldOut, 'held-out');
    const lora = adaptersOf(this.model.lora, trainable);
    const weights = new Map([...this.model.weights].map(([n, w]) => [n, trainable.get(n) ?? w]));
    return heldOut.kind === 'sft'
      ? evaluateSft(weights, this.cfg, heldOut.examples, { batchSize, lora })
      : evaluateDpo(weights, this.reference!, this.cfg, heldOut.examples, { batchSize, lora, beta: this.ft.dpo.beta });
  }

  memory(ema: boolean) {
    return finetuneMemory(this.model, { ema, reference: this.ft.objective === 'dpo' });
  }

  /** Frees what the run made (adapters, a reference copy); the base weights stay the caller's. */
  dispose(): void {
    if (this.model.lora) for (const [name, t] of this.model.trainable) if (!this.model.weights.has(name)) t.dispose();
    if (this.reference && this.reference !== this.model.weights) tf.dispose([...this.reference.values()]);
  }

  private check(data: Encoded, what: string): void {
    if (data.kind !== KIND_FOR[this.ft.objective])
      throw new InvalidInputError(
        `training.finetune.objective '${this.ft.objective}' needs ${KIND_FOR[this.ft.objective]} examples, but the ${what} data holds ${data.kind} examples (dataset.kind)`,
      );
  }
}
