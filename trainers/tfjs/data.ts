// What the built-in trainer reads besides weights: the model's shape and the tokenizer that goes
// with a state (or a dataset), kept in the store so every segment and the LR range test agree.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { InvalidInputError, type ModelInput } from '../../common/config';
import type { FinetuneInput } from '../../finetune/config';
import { encodeExamples, KIND_FOR, readExamples, type Encoded } from '../../finetune/run';
import type { DatasetRef } from '../../common/types';
import { readSplit } from '../../curation/curate';
import type { CheckpointStore } from '../../infra/store/store';
import { TOKENIZER_FILE } from '../../model/checkpoint';
import type { GptConfig } from '../../model/gpt';
import {
  ByteTokenizer,
  datasetTokenizerFile,
  loadTokenizer,
  saveTokenizer,
  trainTokenizer,
  type Tokenizer,
} from '../../model/tokenizer';

/** The model's shape; the vocabulary is the tokenizer's (a BPE trained on a small corpus may have fewer tokens than model.vocabSize). */
export function modelConfig(model: ModelInput, tokenizer: Pick<Tokenizer, 'vocabSize'>): GptConfig {
  return {
    vocabSize: tokenizer.vocabSize,
    seqLen: model.seqLen,
    dModel: model.dModel,
    nLayer: model.nLayer,
    nHead: model.nHead,
    moe: model.moe,
  };
}

/** The tokenizer saved with a state (older states without one are byte-level). */
export async function stateTokenizer(store: CheckpointStore, stateKey: string): Promise<Tokenizer> {
  const key = `${stateKey}/${TOKENIZER_FILE}`;
  return (await store.exists(key)) ? loadTokenizer(await store.get(key)) : new ByteTokenizer();
}

/**
 * The tokenizer a fresh model of `model` trains with on `dataset`: BPE is trained on the train
 * split (deterministic) and kept in the store beside it, so later cycles, segments and the LR range
 * test on the same dataset reuse it.
 */
export async function datasetTokenizer(
  workDir: string,
  store: CheckpointStore,
  dataset: DatasetRef,
  model: Pick<ModelInput, 'tokenizer' | 'vocabSize'>,
  onProgress?: (p: { stage: string; [k: string]: unknown }) => void,
): Promise<Tokenizer> {
  if (model.tokenizer === 'bytes') return new ByteTokenizer();
  const key = `${path.posix.dirname(dataset.trainKey)}/${datasetTokenizerFile(model)}`;
  if (await store.exists(key)) return loadTokenizer(await store.get(key));
  const tokenizer = trainTokenizer(
    model,
    await readSplit(await store.get(dataset.trainKey)),
    onProgress && ((p) => onProgress({ ...p, stage: `tokenizer ${p.stage}` })),
  );
  const file = path.join(workDir, key);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await saveTokenizer(file, tokenizer);
  await store.put(key, file, { immutable: true });
  return tokenizer;
}

/** A fine-tuning dataset's train and held-out examples (DatasetRef.kind must fit the objective), as sequences for the model. */
export async function readExampleSplits(
  store: CheckpointStore,
  dataset: DatasetRef,
  ft: FinetuneInput,
  tokenizer: Tokenizer,
  seqLen: number,
): Promise<{ train: Encoded; heldOut: Encoded; dropped: number }> {
  const kind = KIND_FOR[ft.objective];
  if (dataset.kind !== kind)
    throw new InvalidInputError(
      `training.finetune.objective '${ft.objective}' needs a dataset of ${kind} examples, but dataset.kind is ${JSON.stringify(dataset.kind ?? 'text')}`,
    );
  const split = async (key: string) =>
    encodeExamples(kind, await readExamples(await store.get(key), kind), tokenizer, seqLen);
  const train = await split(dataset.trainKey);
  const heldOut = await split(dataset.heldOutKey);
  return { train: train.encoded, heldOut: heldOut.encoded, dropped: train.dropped + heldOut.dropped };
}

/** A split of the dataset as token ids. */
export async function readTokens(store: CheckpointStore, key: string, tokenizer: Tokenizer) {
  return tokenizer.encodeDocuments(await readSplit(await store.get(key)));
}
