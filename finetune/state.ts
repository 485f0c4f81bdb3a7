// A fine-tuning run's training state in the store. The folder holds what pre-training's does
// (model/checkpoint.ts) so export, hashing and publishing need nothing new:
//   model.safetensors      the full model in the built-in layout, adapters merged (what is published)
//   ema.safetensors        the same for the EMA weights (when training.emaDecay > 0)
//   optimizer.safetensors  AdamW moments of the trained tensors only
//   lora.safetensors       LoRA runs: every trained tensor (A, B, embeddings if trained) and `ema.<name>` shadows;
//                          resume rebuilds the model from the base (training.initFrom) plus these, exactly
//   state.json, tokenizer.json
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadInto, loadOptimizerMoments, saveTrainingState, type TrainingStateMeta } from '../model/checkpoint';
import { disposeWeights } from '../model/gpt';
import { readSafetensors, writeSafetensors, type StoredTensor } from '../model/safetensors';
import type { Tokenizer } from '../model/tokenizer';
import type { Trainer } from '../model/trainer';
import { mergedWeights, type FinetuneModel } from './methods';

export const LORA_FILE = 'lora.safetensors';

/** Writes the state of `trainer` fine-tuning `m` into `dir`. */
export async function saveFinetuneState(
  dir: string,
  m: FinetuneModel,
  trainer: Trainer,
  meta: Omit<TrainingStateMeta, 'modelHash'>,
  tokenizer: Tokenizer,
): Promise<TrainingStateMeta> {
  const merged = mergedWeights(m);
  const ema = trainer.ema && mergedWeights(m, trainer.ema.shadow);
  try {
    if (m.lora) {
      const tensors = new Map<string, StoredTensor>();
      const add = (name: string, t: tf.Tensor) =>
        tensors.set(name, { shape: t.shape, data: t.dataSync() as Float32Array });
      for (const [name, t] of m.trainable) add(name, t);
      if (trainer.ema) for (const [name, t] of trainer.ema.shadow) add(`ema.${name}`, t);
      await writeSafetensors(path.join(dir, LORA_FILE), tensors);
    }
    return await saveTrainingState(dir, merged, trainer.optimizer, meta, ema, tokenizer);
  } finally {
    disposeWeights(merged);
    if (ema) disposeWeights(ema);
  }
}

/**
 * Restores a saved state into `m` (built from the base by prepareFinetune) and its `trainer`:
 * `file(name)` gives a local path for a file of the state, or undefined if it has none.
 * Full and last-layers runs take their weights from model.safetensors (load it before prepareFinetune).
 */
export async function loadFinetuneState(
  file: (name: string) => Promise<string | undefined>,
  m: FinetuneModel,
  trainer: Trainer,
): Promise<void> {
  if (m.lora) {
    const lora = await file(LORA_FILE);
    if (!lora) throw new Error(`the state has no ${LORA_FILE}: it was not saved by a LoRA run`);
    const { tensors } = await readSafetensors(lora);
    const put = (target: Map<string, tf.Variable>, prefix: string) =>
      tf.tidy(() => {
        for (const [name, v] of target) {
          const t = tensors.get(prefix + name);
          if (!t)
            throw new Error(
              `${LORA_FILE} has no tensor '${prefix + name}': was it saved with another training.finetune.method?`,
            );
          v.assign(tf.tensor(t.data, t.shape));
        }
      });
    put(m.trainable, '');
    if (trainer.ema) put(trainer.ema.shadow, 'ema.');
  } else {
    const ema = await file('ema.safetensors');
    if (trainer.ema && ema) await loadInto(ema, trainer.ema.shadow);
  }
  const moments = await file('optimizer.safetensors');
  if (!moments) throw new Error('the state has no optimizer.safetensors');
  await loadOptimizerMoments(moments, trainer.optimizer);
}
