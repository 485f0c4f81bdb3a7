// Stage 2, train (gpu queue): one training segment. Loads the state it starts from (or a fresh
// model), trains to `untilStep` (or the deadline), evaluates held-out loss, saves the new state to
// the store and heartbeats progress (step, loss, LR, grad norm, tokens/s) all along. If this worker
// dies, the segment is retried elsewhere from the same starting state: at most one segment is lost.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { activityInfo, cancellationSignal, heartbeat, log } from '@temporalio/activity';
import { EvalSchema, ModelSchema, parseOrExplain, TrainingSchema, type EvalInput, type ModelInput, type TrainingInput } from '../common/config';
import type { DatasetRef, SegmentResult, StateRef } from '../common/types';
import { readSplit } from '../curation/curate';
import type { Settings } from '../infra/settings';
import type { CheckpointStore } from '../infra/store/store';
import { initBackend } from '../model/backend';
import { EMA_FILE, loadInto, loadOptimizerMoments, loadWeights, OPTIMIZER_FILE, saveTrainingState, STATE_FILE, TOKENIZER_FILE, WEIGHTS_FILE, type TrainingStateMeta } from '../model/checkpoint';
import { evaluate } from '../model/evaluate';
import { disposeWeights, initWeights, parameterCount, type GptConfig } from '../model/gpt';
import { ByteTokenizer, datasetTokenizerFile, evaluationBitsPerByte, loadTokenizer, saveTokenizer, trainTokenizer, type Tokenizer } from '../model/tokenizer';
import { Trainer, type StepReport } from '../model/trainer';
import { mapErrors } from './errors';

export interface TrainSegmentInput {
  runId: string;
  segment: number;
  dataset: DatasetRef;
  model: ModelInput;
  training: TrainingInput;
  eval: EvalInput;
  plannedSteps: number; // the schedule's horizon
  from: StateRef | null; // null: a fresh model (or training.initFrom's weights)
  untilStep: number;
  lrScale: number;
  stopAt?: number; // epoch ms
}

/** What the train activity heartbeats; `minerflow cycle status` shows it. */
export type TrainProgress = Omit<StepReport, 'skipped'> & { stage: 'training'; segment: number; resumeFrom: string | null };

/** The model's shape; the vocabulary is the tokenizer's (a BPE trained on a small corpus may have fewer tokens than model.vocabSize). */
export function modelConfig(model: ModelInput, tokenizer: Pick<Tokenizer, 'vocabSize'>): GptConfig {
  return { vocabSize: tokenizer.vocabSize, seqLen: model.seqLen, dModel: model.dModel, nLayer: model.nLayer, nHead: model.nHead, moe: model.moe };
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
export async function datasetTokenizer(settings: Settings, store: CheckpointStore, dataset: DatasetRef, model: Pick<ModelInput, 'tokenizer' | 'vocabSize'>): Promise<Tokenizer> {
  if (model.tokenizer === 'bytes') return new ByteTokenizer();
  const key = `${path.posix.dirname(dataset.trainKey)}/${datasetTokenizerFile(model)}`;
  if (await store.exists(key)) return loadTokenizer(await store.get(key));
  const tokenizer = trainTokenizer(model, await readSplit(await store.get(dataset.trainKey)));
  const file = path.join(settings.dataDir, 'work', key);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await saveTokenizer(file, tokenizer);
  await store.put(key, file, { immutable: true });
  return tokenizer;
}

export function makeTrain(settings: Settings, store: CheckpointStore) {
  /** Saves a state into the store under `key` (files written locally first, then put). */
  async function publishState(key: string, save: (dir: string) => Promise<TrainingStateMeta>): Promise<TrainingStateMeta> {
    const dir = path.join(settings.dataDir, 'work', key);
    await fs.mkdir(dir, { recursive: true });
    const meta = await save(dir);
    const files = [WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE];
    for (const f of [EMA_FILE, TOKENIZER_FILE]) if (await fs.access(path.join(dir, f)).then(() => true, () => false)) files.push(f);
    for (const f of files) await store.put(`${key}/${f}`, path.join(dir, f));
    return meta;
  }

  return async function trainSegment(input: TrainSegmentInput): Promise<SegmentResult> {
    return mapErrors(async () => {
      const model = parseOrExplain(ModelSchema, input.model, 'train input model');
      const training = parseOrExplain(TrainingSchema, input.training, 'train input training');
      const evalOpts = parseOrExplain(EvalSchema, input.eval, 'train input eval');
      const attempt = activityInfo().attempt;
      heartbeat({ stage: 'loading', segment: input.segment, resumeFrom: input.from?.key ?? null });
      const backend = await initBackend(model.backend, (m) => log.info(m));
      // The tokenizer goes with the weights: a resumed or warm-started state keeps the one its
      // embeddings were trained with; only a fresh model gets the dataset's.
      const tokenizer = input.from
        ? await stateTokenizer(store, input.from.key)
        : training.initFrom
          ? await stateTokenizer(store, training.initFrom)
          : await datasetTokenizer(settings, store, input.dataset, model);
      if (input.from === null && training.initFrom && tokenizer.type !== model.tokenizer) {
        log.warn('warm start keeps its own tokenizer, not model.tokenizer', { initFrom: training.initFrom, tokenizer: tokenizer.type, vocabSize: tokenizer.vocabSize });
      }
      const cfg = modelConfig(model, tokenizer);
      const data = tokenizer.encodeDocuments(await readSplit(await store.get(input.dataset.trainKey)));
      const heldOut = tokenizer.encodeDocuments(await readSplit(await store.get(input.dataset.heldOutKey)));
      const schedule = { ...training, steps: input.plannedSteps };

      // Where this segment starts: a saved state, a warm start, or a fresh model.
      let from = input.from;
      let weights;
      let trainer: Trainer;
      if (from) {
        const counters = (JSON.parse(await fs.readFile(await store.get(`${from.key}/${STATE_FILE}`), 'utf8')) as TrainingStateMeta).counters;
        weights = await loadWeights(await store.get(`${from.key}/${WEIGHTS_FILE}`), cfg);
        trainer = new Trainer(cfg, weights, schedule, data, counters);
        await loadOptimizerMoments(await store.get(`${from.key}/${OPTIMIZER_FILE}`), trainer.optimizer);
        if (trainer.ema && (await store.exists(`${from.key}/${EMA_FILE}`))) await loadInto(await store.get(`${from.key}/${EMA_FILE}`), trainer.ema.shadow);
      } else {
        weights = training.initFrom ? await loadWeights(await store.get(`${training.initFrom}/${WEIGHTS_FILE}`), cfg) : initWeights(cfg, model.seed);
        trainer = new Trainer(cfg, weights, schedule, data);
        // The starting point is a state too: a NaN storm in the first segment can go back to it.
        const key = `runs/${input.runId}/step-0`;
        const meta = await publishState(key, (dir) => saveTrainingState(dir, weights!, trainer.optimizer, { counters: trainer.counters(), trainLoss: NaN, backend }, trainer.ema?.shadow, tokenizer));
        from = { key, step: 0, modelHash: meta.modelHash };
      }
      // The cycle's LR scale, times the trainer's own backoff for every restore in this state's history.
      trainer.lrScale = input.lrScale * training.lrBackoff ** trainer.restores;
      const startStep = trainer.step;
      const skippedBefore = trainer.skipped;
      const metricsKey = `runs/${input.runId}/segments/${input.segment}/metrics.jsonl`;
      const workDir = path.join(settings.dataDir, 'work', 'runs', input.runId, 'segments', String(input.segment));
      await fs.mkdir(workDir, { recursive: true });
      const metrics = await fs.open(path.join(workDir, 'metrics.jsonl'), 'w');
      log.info('training segment', { segment: input.segment, attempt, from: from.key, startStep, untilStep: input.untilStep, params: parameterCount(weights), backend });
      try {
        let lastLr = 0;
        const summary = await trainer.run({
          untilStep: input.untilStep,
          stopAt: input.stopAt,
          onStep: async (r) => {
            lastLr = r.lr;
            await metrics.write(JSON.stringify(r) + '\n');
            heartbeat({ stage: 'training', segment: input.segment, resumeFrom: from!.key, ...r } satisfies TrainProgress);
            if (r.step % 25 === 0) log.info(`step ${r.step}/${input.plannedSteps} loss ${r.loss.toFixed(4)} aux ${r.auxLoss.toFixed(4)} lr ${r.lr.toExponential(2)} grad ${r.gradNorm.toFixed(2)} ${r.tokensPerSec.toFixed(0)} tok/s on ${trainer.threads} thread(s)${r.restores ? `, ${r.restores} restore(s) of the last good state` : ''}`);
            await new Promise((resolve) => setImmediate(resolve)); // let heartbeats and cancellation through
            if (cancellationSignal().aborted) throw cancellationSignal().reason ?? new Error('cancelled');
          },
        });
        await metrics.close();
        await store.put(metricsKey, path.join(workDir, 'metrics.jsonl'));
        const skippedHere = trainer.skipped - skippedBefore;
        const weightsFinite = [...weights.values()].every((w) => w.dataSync().every(Number.isFinite));
        const heldOutEval = weightsFinite ? evaluate(weights, cfg, heldOut, evalOpts) : undefined;
        const heldOutLoss = heldOutEval?.loss ?? NaN;
        // Per-token loss depends on the tokenizer; bits per byte compares across tokenizers.
        const heldOutBitsPerByte = heldOutEval ? evaluationBitsPerByte(tokenizer, heldOut, heldOutEval.loss, heldOutEval.tokens) : NaN;
        const emaHeldOutLoss = trainer.ema ? evaluate(trainer.ema.shadow, cfg, heldOut, evalOpts).loss : undefined;
        // A NaN storm: most of the segment's batches were skipped, or the weights or loss went non-finite.
        const nonFinite = !Number.isFinite(heldOutLoss) || (summary.stepsRun > 0 && skippedHere > summary.stepsRun / 2);
        let state = from;
        if (!nonFinite && summary.stepsRun > 0) {
          const key = `runs/${input.runId}/step-${trainer.step}-s${input.segment}`;
          const meta = await publishState(key, (dir) => saveTrainingState(dir, weights!, trainer.optimizer, { counters: trainer.counters(), trainLoss: summary.finalLoss, heldOutLoss, backend }, trainer.ema?.shadow, tokenizer));
          state = { key, step: trainer.step, modelHash: meta.modelHash };
        }
        log.info('segment done', { segment: input.segment, endStep: trainer.step, trainLoss: summary.finalLoss, heldOutLoss, heldOutBitsPerByte, tokenizer: tokenizer.type, vocabSize: tokenizer.vocabSize, emaHeldOutLoss, nonFinite, stoppedEarly: summary.stoppedEarly });
        return {
          segment: input.segment,
          attempt,
          startStep,
          endStep: trainer.step,
          state,
          trainLoss: summary.finalLoss,
          heldOutLoss,
          emaHeldOutLoss,
          skippedBatches: skippedHere,
          nonFinite,
          stoppedEarly: summary.stoppedEarly,
          seconds: summary.seconds,
          tokensPerSec: summary.seconds > 0 ? summary.tokens / summary.seconds : 0,
          lr: lastLr,
          backend,
          metricsKey,
        };
      } finally {
        await metrics.close().catch(() => undefined);
        trainer.dispose();
        disposeWeights(weights);
      }
    });
  };
}
