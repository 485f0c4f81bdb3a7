// A base model to fine-tune (training.initFrom): any store folder holding a model in the built-in
// layout, e.g. a minerflow checkpoint or export, or a model downloaded from a hub. Layout:
//   model.safetensors  F32 tensors named as model/gpt.ts weightShapes (wte, wpe, h.<l>.attn.c_attn.weight,
//                      …, ln_f.bias), [in, out] matrices; no optimizer state is needed
//   tokenizer.json     the minerflow tokenizer its embeddings were trained with (absent: bytes)
//   manifest.json      {format: 'minerflow-checkpoint', model: {vocabSize, seqLen, dModel, nLayer, nHead, moe?}, …}
// The model.* config of the fine-tuning run must be the manifest's (loading names any tensor that differs).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { CheckpointStore } from '../infra/store/store';
import {
  MANIFEST_FILE,
  readManifest,
  saveWeights,
  TOKENIZER_FILE,
  WEIGHTS_FILE,
  writeManifest,
} from '../model/checkpoint';
import { weightShapes, type GptConfig, type Weights } from '../model/gpt';
import { readSafetensors } from '../model/safetensors';
import { loadTokenizer, saveTokenizer, type Tokenizer } from '../model/tokenizer';

/** A folder that is not a usable base model; the message names the file and, for weights, the tensor. */
export class BaseModelError extends Error {
  override name = 'BaseModelError';
}

/** Checks the folder `dir` is a complete base model and returns its config. */
export async function checkBaseModel(dir: string): Promise<GptConfig> {
  for (const f of [WEIGHTS_FILE, TOKENIZER_FILE, MANIFEST_FILE])
    await fs.access(path.join(dir, f)).catch(() => {
      throw new BaseModelError(
        `base model folder ${dir} has no ${f} (it needs ${WEIGHTS_FILE}, ${TOKENIZER_FILE}, ${MANIFEST_FILE})`,
      );
    });
  const manifest = await readManifest(path.join(dir, MANIFEST_FILE)).catch((err: Error) => {
    throw new BaseModelError(`${path.join(dir, MANIFEST_FILE)}: ${err.message}`);
  });
  const m = manifest.model;
  const cfg: GptConfig = {
    vocabSize: m.vocabSize,
    seqLen: m.seqLen,
    dModel: m.dModel,
    nLayer: m.nLayer,
    nHead: m.nHead,
    moe: m.moe ?? null,
  };
  const tokenizer = await loadTokenizer(path.join(dir, TOKENIZER_FILE));
  if (tokenizer.vocabSize !== cfg.vocabSize)
    throw new BaseModelError(
      `${TOKENIZER_FILE} has ${tokenizer.vocabSize} tokens but the manifest's model.vocabSize is ${cfg.vocabSize}`,
    );
  const { tensors } = await readSafetensors(path.join(dir, WEIGHTS_FILE));
  const shapes = weightShapes(cfg);
  for (const [name, shape] of shapes) {
    const t = tensors.get(name);
    if (!t) throw new BaseModelError(`${WEIGHTS_FILE} has no tensor '${name}' (the manifest's model needs it)`);
    if (t.shape.join('x') !== shape.join('x'))
      throw new BaseModelError(
        `${WEIGHTS_FILE} tensor '${name}' has shape [${t.shape}] but the manifest's model needs [${shape}]`,
      );
  }
  for (const name of tensors.keys())
    if (!shapes.has(name))
      throw new BaseModelError(`${WEIGHTS_FILE} has tensor '${name}', which the built-in model does not have`);
  return cfg;
}

/** Puts the base model in `dir` into the store under `key` (use it as training.initFrom) after checking it. */
export async function importBaseModel(store: CheckpointStore, dir: string, key: string): Promise<GptConfig> {
  const cfg = await checkBaseModel(dir);
  for (const f of [WEIGHTS_FILE, TOKENIZER_FILE, MANIFEST_FILE]) await store.put(`${key}/${f}`, path.join(dir, f));
  return cfg;
}

/** Writes `weights` as a base model folder in `dir` (what a checkpoint or export holds), e.g. a model pre-trained here. */
export async function saveBaseModel(
  dir: string,
  weights: Weights,
  cfg: GptConfig,
  tokenizer: Tokenizer,
  seed = 0,
): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const modelHash = await saveWeights(path.join(dir, WEIGHTS_FILE), weights, { format: 'pt' });
  await saveTokenizer(path.join(dir, TOKENIZER_FILE), tokenizer);
  await writeManifest(dir, {
    format: 'minerflow-checkpoint',
    version: 1,
    modelHash,
    model: { ...cfg, seed },
    tokenizer: tokenizer.type,
    step: 0,
    trainLoss: NaN,
    backend: 'tfjs',
    runId: 'base',
    round: 0,
  });
  return modelHash;
}
