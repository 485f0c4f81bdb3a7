// Stage 3, checkpoint (gpu queue): evaluate the trained weights on held-out data as a validator
// would, refuse anything unfit to commit, and publish model.safetensors + tokenizer.json +
// manifest.json under checkpoints/<model hash>/ — content-addressed and never overwritten.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { heartbeat, log } from '@temporalio/activity';
import { checkpointKey } from '../common/commitments';
import { EvalSchema, ModelSchema, parseOrExplain, type EvalInput, type ModelInput } from '../common/config';
import type { CheckpointRef, DatasetRef, StateRef } from '../common/types';
import { readSplit } from '../curation/curate';
import type { Settings } from '../infra/settings';
import type { CheckpointStore } from '../infra/store/store';
import { initBackend } from '../model/backend';
import { EMA_FILE, loadWeights, MANIFEST_FILE, TOKENIZER_FILE, WEIGHTS_FILE, writeManifest, type Manifest } from '../model/checkpoint';
import { evaluate } from '../model/evaluate';
import { disposeWeights, initWeights } from '../model/gpt';
import { hashSafetensorsFile } from '../model/hash';
import { evaluationBitsPerByte, saveTokenizer } from '../model/tokenizer';
import { CheckpointError, mapErrors } from './errors';
import { modelConfig, stateTokenizer } from './train';

export interface CheckpointActivityInput {
  runId: string;
  dataset: DatasetRef;
  state: StateRef; // the training state to publish (the cycle's best)
  trainLoss: number;
  backend: string;
  round: number; // the round it is trained for
  model: ModelInput;
  eval: EvalInput;
}

export function makeCheckpoint(settings: Settings, store: CheckpointStore) {
  return async function checkpoint(input: CheckpointActivityInput): Promise<CheckpointRef> {
    return mapErrors(async () => {
      const model = parseOrExplain(ModelSchema, input.model, 'checkpoint input model');
      const evalOpts = parseOrExplain(EvalSchema, input.eval, 'checkpoint input eval');
      if (input.state.step <= 0) throw new CheckpointError('refusing to checkpoint the untrained base model (step 0)');
      await initBackend(model.backend, (m) => log.info(m));
      heartbeat({ stage: 'verifying' });
      const rawFile = await store.get(`${input.state.key}/${WEIGHTS_FILE}`);
      const rawHash = await hashSafetensorsFile(rawFile);
      if (rawHash !== input.state.modelHash) {
        throw new CheckpointError(`trained weights in ${input.state.key} hash to ${rawHash}, not ${input.state.modelHash}: the file changed after training`);
      }
      const emaFile = (await store.exists(`${input.state.key}/${EMA_FILE}`)) ? await store.get(`${input.state.key}/${EMA_FILE}`) : undefined;
      // The state's own tokenizer: its weights were trained on its ids.
      const tokenizer = await stateTokenizer(store, input.state.key);
      const cfg = modelConfig(model, tokenizer);
      const heldOut = tokenizer.encodeDocuments(await readSplit(await store.get(input.dataset.heldOutKey)));
      heartbeat({ stage: 'evaluating' });
      let scoredTokens = 0;
      const lossOf = async (file: string) => {
        const w = await loadWeights(file, cfg);
        try {
          const r = evaluate(w, cfg, heldOut, evalOpts);
          scoredTokens = r.tokens;
          return r.loss;
        } finally {
          disposeWeights(w);
        }
      };
      const rawHeldOutLoss = await lossOf(rawFile);
      const emaHeldOutLoss = emaFile ? await lossOf(emaFile) : undefined;
      // Submit whichever of the raw and EMA weights does better on held-out data.
      const useEma = emaHeldOutLoss !== undefined && Number.isFinite(emaHeldOutLoss) && !(emaHeldOutLoss >= rawHeldOutLoss);
      const weightsFile = useEma ? emaFile! : rawFile;
      const hash = useEma ? await hashSafetensorsFile(weightsFile) : rawHash;
      const heldOutLoss = useEma ? emaHeldOutLoss! : rawHeldOutLoss;
      const base = initWeights(cfg, model.seed);
      const baselineLoss = (() => {
        try {
          return evaluate(base, cfg, heldOut, evalOpts).loss;
        } finally {
          disposeWeights(base);
        }
      })();
      if (!Number.isFinite(heldOutLoss)) throw new CheckpointError(`held-out loss is ${heldOutLoss}; refusing to publish this checkpoint`);
      if (heldOutLoss >= baselineLoss) {
        throw new CheckpointError(`held-out loss ${heldOutLoss.toFixed(4)} is no better than the untrained model's ${baselineLoss.toFixed(4)}; refusing to commit the base model`);
      }
      const heldOutBitsPerByte = evaluationBitsPerByte(tokenizer, heldOut, heldOutLoss, scoredTokens);
      log.info('held-out evaluation', { heldOutLoss, heldOutBitsPerByte, tokenizer: tokenizer.type, vocabSize: tokenizer.vocabSize, rawHeldOutLoss, emaHeldOutLoss, weights: useEma ? 'ema' : 'raw', baselineLoss, perplexity: Math.exp(heldOutLoss) });

      const manifest: Manifest = {
        format: 'minerflow-checkpoint',
        version: 1,
        modelHash: hash,
        model: { ...cfg, seed: model.seed },
        tokenizer: tokenizer.type,
        step: input.state.step,
        trainLoss: input.trainLoss,
        heldOutLoss,
        baselineLoss,
        backend: input.backend,
        round: input.round,
        runId: input.runId, // no timestamps: a retried publish must write identical bytes
      };
      const stage = path.join(settings.dataDir, 'work', 'checkpoints', hash);
      await fs.mkdir(stage, { recursive: true });
      await writeManifest(stage, manifest);
      await saveTokenizer(path.join(stage, TOKENIZER_FILE), tokenizer);
      const key = checkpointKey(hash);
      // Weights and tokenizer first, manifest last: a manifest's presence means the checkpoint is complete.
      // The hash covers the weights only (Connito's rule); the tokenizer travels with them because a
      // validator cannot turn text into this model's ids without it.
      // Identical weights published before (training is deterministic) are the same checkpoint:
      // it is reused as it is, never rewritten.
      await store.put(`${key}/${WEIGHTS_FILE}`, weightsFile, { immutable: true });
      await store.put(`${key}/${TOKENIZER_FILE}`, path.join(stage, TOKENIZER_FILE), { immutable: true });
      if (await store.exists(`${key}/${MANIFEST_FILE}`)) log.info('checkpoint already published; reusing it', { hash });
      else await store.put(`${key}/${MANIFEST_FILE}`, path.join(stage, MANIFEST_FILE), { immutable: true });
      return {
        hash,
        key,
        location: store.uri,
        heldOutLoss,
        heldOutBitsPerByte,
        tokenizer: tokenizer.type,
        vocabSize: tokenizer.vocabSize,
        baselineLoss,
        trainLoss: input.trainLoss,
        steps: input.state.step,
        round: input.round,
        weights: useEma ? 'ema' : 'raw',
        rawHeldOutLoss,
        emaHeldOutLoss,
      };
    });
  };
}
