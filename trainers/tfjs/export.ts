// The built-in trainer's export: evaluate a trained state on held-out data as a validator would,
// pick the better of its raw and EMA weights, refuse anything unfit to publish (non-finite, no
// better than the untrained model, a file changed since training), and hand the files to the subnet.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EvalSchema, ModelSchema, parseOrExplain } from '../../common/config';
import type { Logger } from '../../infra/log';
import type { CheckpointStore } from '../../infra/store/store';
import { initBackend, withBackendRecovery } from '../../model/backend';
import { EMA_FILE, loadWeights, TOKENIZER_FILE, WEIGHTS_FILE } from '../../model/checkpoint';
import { evaluate } from '../../model/evaluate';
import { disposeWeights, initWeights, type GptConfig, type Weights } from '../../model/gpt';
import { hashSafetensorsFile } from '../../model/hash';
import { evaluationBitsPerByte, saveTokenizer, type TokenIds } from '../../model/tokenizer';
import type { ExportedModel, ExportRequest, TrainerHooks } from '../trainer';
import { modelConfig, readTokens, stateTokenizer } from './data';

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
  const heldOut = await readTokens(store, input.dataset.heldOutKey, tokenizer);
  hooks.progress({ stage: 'evaluating' });
  const evalOf = async (file: string) => evaluateWeights(await loadWeights(file, cfg), cfg, heldOut, evalOpts);
  const raw = await evalOf(rawFile);
  const ema = emaFile ? await evalOf(emaFile) : undefined;
  // Publish whichever of the raw and EMA weights does better on held-out data.
  const useEma = ema !== undefined && Number.isFinite(ema.loss) && !(ema.loss >= raw.loss);
  const weightsFile = useEma ? emaFile! : rawFile;
  const best = useEma ? ema : raw;
  const baselineLoss = evaluateWeights(initWeights(cfg, model.seed), cfg, heldOut, evalOpts).loss;
  if (!Number.isFinite(best.loss))
    throw new CheckpointError(`held-out loss is ${best.loss}; refusing to publish this checkpoint`);
  if (best.loss >= baselineLoss) {
    throw new CheckpointError(
      `held-out loss ${best.loss.toFixed(4)} is no better than the untrained model's ${baselineLoss.toFixed(4)}; refusing to commit the base model`,
    );
  }
  const heldOutBitsPerByte = evaluationBitsPerByte(tokenizer, heldOut, best.loss, best.tokens);
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

function evaluateWeights(
  w: Weights,
  cfg: GptConfig,
  heldOut: TokenIds,
  opts: { maxTokens: number; batchSize: number },
) {
  try {
    return evaluate(w, cfg, heldOut, opts);
  } finally {
    disposeWeights(w);
  }
}
