// The built-in trainer's export: evaluate a trained state on held-out data as a validator would,
// pick the better of its raw and EMA weights, refuse anything unfit to publish (non-finite, no
// better than the untrained model, a file changed since training), and hand the files to the subnet.
// A fine-tuned state is judged by its objective on the held-out examples (masked CE, DPO loss), and
// must beat the base it started from; its model.safetensors already has any LoRA adapters merged.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EvalSchema, ModelSchema, parseOrExplain } from '../../common/config';
import type { Logger } from '../../infra/log';
import type { CheckpointStore } from '../../infra/store/store';
import { initBackend, withBackendRecovery } from '../../model/backend';
import { EMA_FILE, loadWeights, TOKENIZER_FILE, WEIGHTS_FILE } from '../../model/checkpoint';
import { evaluate } from '../../model/evaluate';
import { disposeWeights, initWeights, type Weights } from '../../model/gpt';
import { hashSafetensorsFile } from '../../model/hash';
import { evaluationBitsPerByte, saveTokenizer } from '../../model/tokenizer';
import type { ExportedModel, ExportRequest, TrainerHooks } from '../trainer';
import { evaluateDpo, evaluateSft } from '../../finetune/objectives';
import { modelConfig, readExampleSplits, readTokens, stateTokenizer } from './data';

/** A state that must not be published (non-finite, untrained, changed after training). */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export function exportModel(
  workDir: string,
  store: CheckpointStore,
  log: Logger,
  input: ExportRequest,
  hooks: TrainerHooks,
): Promise<ExportedModel> {
  return withBackendRecovery(
    () => exportState(workDir, store, log, input, hooks),
    (m) => log.warn(m),
  );
}

async function exportState(
  workDir: string,
  store: CheckpointStore,
  log: Logger,
  input: ExportRequest,
  hooks: TrainerHooks,
): Promise<ExportedModel> {
  const model = parseOrExplain(ModelSchema, input.model, 'checkpoint input model');
  const evalOpts = parseOrExplain(EvalSchema, input.eval, 'checkpoint input eval');
  if (input.state.step <= 0) throw new CheckpointError('refusing to checkpoint the untrained base model (step 0)');
  await initBackend(model.backend, (m) => log.info(m));
  hooks.progress({ stage: 'verifying' });
  const rawFile = await store.get(`${input.state.key}/${WEIGHTS_FILE}`);
  const rawHash = await hashSafetensorsFile(rawFile);
  if (rawHash !== input.state.modelHash) {
    throw new CheckpointError(
      `trained weights in ${input.state.key} hash to ${rawHash}, not ${input.state.modelHash}: the file changed after training`,
    );
  }
  const emaFile = (await store.exists(`${input.state.key}/${EMA_FILE}`))
    ? await store.get(`${input.state.key}/${EMA_FILE}`)
    : undefined;
  // The state's own tokenizer: its weights were trained on its ids.
  const tokenizer = await stateTokenizer(store, input.state.key);
  const cfg = modelConfig(model, tokenizer);
  const ft = input.training?.finetune ?? null;
  const examples = ft ? await readExampleSplits(store, input.dataset, ft, tokenizer, cfg.seqLen) : undefined;
  const heldOut = ft ? undefined : await readTokens(store, input.dataset.heldOutKey, tokenizer);
  const baseFile = ft ? await store.get(`${input.training!.initFrom!}/${WEIGHTS_FILE}`) : undefined;
  const reference = ft?.objective === 'dpo' ? await loadWeights(baseFile!, cfg) : undefined;
  const score = (w: Weights): { loss: number; tokens: number } => {
    if (!examples) return evaluate(w, cfg, heldOut!, evalOpts);
    const h = examples.heldOut;
    return h.kind === 'sft'
      ? evaluateSft(w, cfg, h.examples, { batchSize: evalOpts.batchSize })
      : {
          tokens: 0,
          ...evaluateDpo(w, reference!, cfg, h.examples, { batchSize: evalOpts.batchSize, beta: ft!.dpo.beta }),
        };
  };
  hooks.progress({ stage: 'evaluating' });
  const evalOf = async (file: string) => scoreAndDispose(await loadWeights(file, cfg), score);
  let raw: { loss: number; tokens: number };
  let ema: { loss: number; tokens: number } | undefined;
  let baselineLoss: number;
  try {
    raw = await evalOf(rawFile);
    ema = emaFile ? await evalOf(emaFile) : undefined;
    // The bar to clear: the untrained model, or for fine-tuning the base it started from.
    baselineLoss = (baseFile ? await evalOf(baseFile) : scoreAndDispose(initWeights(cfg, model.seed), score)).loss;
  } finally {
    if (reference) disposeWeights(reference);
  }
  // Publish whichever of the raw and EMA weights does better on held-out data.
  const useEma = ema !== undefined && Number.isFinite(ema.loss) && !(ema.loss >= raw.loss);
  const weightsFile = useEma ? emaFile! : rawFile;
  const best = useEma ? ema! : raw;
  if (!Number.isFinite(best.loss))
    throw new CheckpointError(`held-out loss is ${best.loss}; refusing to publish this checkpoint`);
  if (best.loss >= baselineLoss) {
    throw new CheckpointError(
      `held-out loss ${best.loss.toFixed(4)} is no better than the ${ft ? 'base model' : 'untrained model'}'s ${baselineLoss.toFixed(4)}; refusing to commit the base model`,
    );
  }
  // Bits per byte is a text stream's measure; fine-tuning's held-out loss is over response tokens only.
  const heldOutBitsPerByte = heldOut ? evaluationBitsPerByte(tokenizer, heldOut, best.loss, best.tokens) : NaN;
  log.info(
    {
      heldOutLoss: best.loss,
      heldOutBitsPerByte,
      tokenizer: tokenizer.type,
      vocabSize: tokenizer.vocabSize,
      rawHeldOutLoss: raw.loss,
      emaHeldOutLoss: ema?.loss,
      weights: useEma ? 'ema' : 'raw',
      baselineLoss,
      perplexity: Math.exp(best.loss),
    },
    'held-out evaluation',
  );
  const tokenizerFile = path.join(workDir, 'export', input.state.key, TOKENIZER_FILE);
  await fs.mkdir(path.dirname(tokenizerFile), { recursive: true });
  await saveTokenizer(tokenizerFile, tokenizer);
  return {
    weightsFile,
    modelHash: useEma ? await hashSafetensorsFile(weightsFile) : rawHash,
    files: { [TOKENIZER_FILE]: tokenizerFile },
    heldOutLoss: best.loss,
    heldOutBitsPerByte,
    baselineLoss,
    rawHeldOutLoss: raw.loss,
    emaHeldOutLoss: ema?.loss,
    weights: useEma ? 'ema' : 'raw',
    tokenizer: tokenizer.type,
    vocabSize: tokenizer.vocabSize,
    model: { ...cfg, seed: model.seed },
  };
}

function scoreAndDispose<R>(w: Weights, score: (w: Weights) => R): R {
  try {
    return score(w);
  } finally {
    disposeWeights(w);
  }
}
