// One training segment of the built-in trainer: load the state it starts from (or a fresh model),
// train to `untilStep` (or the deadline), evaluate held-out loss, save the new state to the store.
// If the worker dies, the segment is retried elsewhere from the same starting state.
// With training.finetune the model starts from the base (training.initFrom), the data are the
// dataset's examples (dataset.kind) and the Trainer minimises the fine-tuning objective (finetune/).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EvalSchema, ModelSchema, parseOrExplain, TrainingSchema } from '../../common/config';
import type { SegmentResult, StateRef } from '../../common/types';
import type { Logger } from '../../infra/log';
import type { CheckpointStore } from '../../infra/store/store';
import { backendThreads, initBackend, withBackendRecovery } from '../../model/backend';
import {
  EMA_FILE,
  loadInto,
  loadOptimizerMoments,
  loadWeights,
  OPTIMIZER_FILE,
  saveTrainingState,
  STATE_FILE,
  TOKENIZER_FILE,
  WEIGHTS_FILE,
  type TrainingStateMeta,
} from '../../model/checkpoint';
import { evaluate } from '../../model/evaluate';
import { disposeWeights, initWeights, parameterCount } from '../../model/gpt';
import { evaluationBitsPerByte } from '../../model/tokenizer';
import { Trainer } from '../../model/trainer';
import type { SegmentRequest, TrainerHooks, TrainProgress } from '../trainer';
import { FinetuneRun, type FinetuneEval } from '../../finetune/run';
import { LORA_FILE, loadFinetuneState, saveFinetuneState } from '../../finetune/state';
import { datasetTokenizer, modelConfig, readExampleSplits, readTokens, stateTokenizer } from './data';
import { checkFits } from './fits';

export function trainSegment(
  workDir: string,
  store: CheckpointStore,
  log: Logger,
  input: SegmentRequest,
  hooks: TrainerHooks,
): Promise<SegmentResult> {
  // A crashed backend (e.g. wasm out of memory) is rebuilt so the worker stays healthy; the attempt fails for good.
  return withBackendRecovery(
    () => train(workDir, store, log, input, hooks),
    (m) => log.warn(m),
  );
}

async function train(
  workDir: string,
  store: CheckpointStore,
  log: Logger,
  input: SegmentRequest,
  hooks: TrainerHooks,
): Promise<SegmentResult> {
  const model = parseOrExplain(ModelSchema, input.model, 'train input model');
  const training = parseOrExplain(TrainingSchema, input.training, 'train input training');
  const evalOpts = parseOrExplain(EvalSchema, input.eval, 'train input eval');
  hooks.progress({ stage: 'loading', segment: input.segment, resumeFrom: input.from?.key ?? null });
  const backend = await initBackend(model.backend, (m) => log.info(m));
  // The tokenizer goes with the weights: a resumed or warm-started state keeps the one its
  // embeddings were trained with; only a fresh model gets the dataset's.
  const tokenizer = input.from
    ? await stateTokenizer(store, input.from.key)
    : training.initFrom
      ? await stateTokenizer(store, training.initFrom)
      : await datasetTokenizer(workDir, store, input.dataset, model, hooks.progress);
  if (input.from === null && training.initFrom && tokenizer.type !== model.tokenizer) {
    log.warn(
      { initFrom: training.initFrom, tokenizer: tokenizer.type, vocabSize: tokenizer.vocabSize },
      'warm start keeps its own tokenizer, not model.tokenizer',
    );
  }
  const cfg = modelConfig(model, tokenizer);
  checkFits(cfg, training);
  const ft = training.finetune;
  const examples = ft ? await readExampleSplits(store, input.dataset, ft, tokenizer, cfg.seqLen) : undefined;
  if (examples?.dropped)
    log.warn(
      { dropped: examples.dropped },
      'examples with no response token left after truncation to model.seqLen were dropped',
    );
  const data = ft ? undefined : await readTokens(store, input.dataset.trainKey, tokenizer);
  const heldOut = ft ? undefined : await readTokens(store, input.dataset.heldOutKey, tokenizer);
  const schedule = { ...training, steps: input.plannedSteps };

  /** Saves a state into the store under `key` (files written locally first, then put). */
  const publishState = async (key: string, save: (dir: string) => Promise<TrainingStateMeta>): Promise<StateRef> => {
    const dir = path.join(workDir, key);
    await fs.mkdir(dir, { recursive: true });
    const meta = await save(dir);
    const files = [WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE];
    for (const f of [EMA_FILE, TOKENIZER_FILE, LORA_FILE])
      if (
        await fs.access(path.join(dir, f)).then(
          () => true,
          () => false,
        )
      )
        files.push(f);
    for (const f of files) await store.put(`${key}/${f}`, path.join(dir, f));
    return { key, step: meta.counters.step, modelHash: meta.modelHash };
  };

  // Where this segment starts: a saved state, a warm start, or a fresh model.
  let from = input.from;
  let weights;
  let trainer: Trainer;
  let run: FinetuneRun | undefined;
  if (ft && examples) {
    // Fine-tuning: LoRA resumes from the base plus its adapters; full and last-layers from the state's weights.
    const baseKey = from && ft.method.kind !== 'lora' ? from.key : training.initFrom!;
    weights = await loadWeights(await store.get(`${baseKey}/${WEIGHTS_FILE}`), cfg);
    const reference =
      from && FinetuneRun.needsSeparateReference(ft)
        ? await loadWeights(await store.get(`${training.initFrom!}/${WEIGHTS_FILE}`), cfg)
        : undefined;
    run = new FinetuneRun(cfg, weights, ft, reference);
    const r = run;
    const counters = from
      ? (JSON.parse(await fs.readFile(await store.get(`${from.key}/${STATE_FILE}`), 'utf8')) as TrainingStateMeta)
          .counters
      : undefined;
    trainer = new Trainer(cfg, r.model.trainable, schedule, r.objective(examples.train), counters);
    const t = trainer;
    if (from) {
      const key = from.key;
      await loadFinetuneState(
        async (f) => ((await store.exists(`${key}/${f}`)) ? store.get(`${key}/${f}`) : undefined),
        r.model,
        t,
      );
    } else
      from = await publishState(`runs/${input.runId}/step-0`, (dir) =>
        saveFinetuneState(dir, r.model, t, { counters: t.counters(), trainLoss: NaN, backend }, tokenizer),
      );
    log.info(
      {
        objective: ft.objective,
        method: ft.method.kind,
        ...r.memory(training.emaDecay > 0),
        examples: examples.train.examples.length,
      },
      'fine-tuning',
    );
  } else if (from) {
    const counters = (
      JSON.parse(await fs.readFile(await store.get(`${from.key}/${STATE_FILE}`), 'utf8')) as TrainingStateMeta
    ).counters;
    weights = await loadWeights(await store.get(`${from.key}/${WEIGHTS_FILE}`), cfg);
    trainer = new Trainer(cfg, weights, schedule, data!, counters);
    await loadOptimizerMoments(await store.get(`${from.key}/${OPTIMIZER_FILE}`), trainer.optimizer);
    if (trainer.ema && (await store.exists(`${from.key}/${EMA_FILE}`)))
      await loadInto(await store.get(`${from.key}/${EMA_FILE}`), trainer.ema.shadow);
  } else {
    weights = training.initFrom
      ? await loadWeights(await store.get(`${training.initFrom}/${WEIGHTS_FILE}`), cfg)
      : initWeights(cfg, model.seed);
    trainer = new Trainer(cfg, weights, schedule, data!);
    // The starting point is a state too: a NaN storm in the first segment can go back to it.
    const w = weights;
    const t = trainer;
    from = await publishState(`runs/${input.runId}/step-0`, (dir) =>
      saveTrainingState(
        dir,
        w,
        t.optimizer,
        { counters: t.counters(), trainLoss: NaN, backend },
        t.ema?.shadow,
        tokenizer,
      ),
    );
  }
  // The loop's LR scale, times the trainer's own backoff for every restore in this state's history.
  trainer.lrScale = input.lrScale * training.lrBackoff ** trainer.restores;
  const startStep = trainer.step;
  const skippedBefore = trainer.skipped;
  const metricsKey = `runs/${input.runId}/segments/${input.segment}/metrics.jsonl`;
  const segmentDir = path.join(workDir, 'runs', input.runId, 'segments', String(input.segment));
  await fs.mkdir(segmentDir, { recursive: true });
  const metrics = await fs.open(path.join(segmentDir, 'metrics.jsonl'), 'w');
  const startedFrom = from.key;
  log.info(
    {
      segment: input.segment,
      attempt: hooks.attempt,
      from: startedFrom,
      startStep,
      untilStep: input.untilStep,
      params: parameterCount(weights),
      backend,
      threads: trainer.threads, // data-parallel replicas (wasm)
      kernelThreads: backendThreads(), // threads each replica's kernels use (libtensorflow's intra-op pool)
    },
    'training segment',
  );
  try {
    let lastLr = 0;
    const summary = await trainer.run({
      untilStep: input.untilStep,
      stopAt: input.stopAt,
      onStep: async (r) => {
        lastLr = r.lr;
        await metrics.write(JSON.stringify(r) + '\n');
        hooks.progress({
          stage: 'training',
          segment: input.segment,
          resumeFrom: startedFrom,
          ...r,
        } satisfies TrainProgress & { skipped: number });
        if (r.step % 25 === 0)
          log.info(
            {
              step: r.step,
              of: input.plannedSteps,
              loss: r.loss,
              auxLoss: r.auxLoss,
              lr: r.lr,
              gradNorm: r.gradNorm,
              tokensPerSec: Math.round(r.tokensPerSec),
              threads: trainer.threads,
              restores: r.restores,
              ...r.metrics,
            },
            'step',
          );
        await new Promise((resolve) => setImmediate(resolve)); // let heartbeats and cancellation through
        if (hooks.signal.aborted) throw hooks.signal.reason ?? new Error('cancelled');
      },
    });
    await metrics.close();
    await store.put(metricsKey, path.join(segmentDir, 'metrics.jsonl'));
    const skippedHere = trainer.skipped - skippedBefore;
    const weightsFinite = allFinite(run ? run.model.trainable : weights);
    let heldOutLoss: number;
    let heldOutBitsPerByte = NaN;
    let emaHeldOutLoss: number | undefined;
    let finetuneEval: FinetuneEval | undefined;
    if (run && examples) {
      // Fine-tuning's evaluation is its own objective on the held-out examples (masked CE, or DPO loss and accuracy).
      finetuneEval = weightsFinite ? run.evaluate(examples.heldOut, evalOpts.batchSize) : undefined;
      heldOutLoss = finetuneEval?.loss ?? NaN;
      emaHeldOutLoss = trainer.ema
        ? run.evaluate(examples.heldOut, evalOpts.batchSize, trainer.ema.shadow).loss
        : undefined;
    } else {
      const heldOutEval = weightsFinite ? evaluate(weights, cfg, heldOut!, evalOpts) : undefined;
      heldOutLoss = heldOutEval?.loss ?? NaN;
      // Per-token loss depends on the tokenizer; bits per byte compares across tokenizers.
      heldOutBitsPerByte = heldOutEval
        ? evaluationBitsPerByte(tokenizer, heldOut!, heldOutEval.loss, heldOutEval.tokens)
        : NaN;
      emaHeldOutLoss = trainer.ema ? evaluate(trainer.ema.shadow, cfg, heldOut!, evalOpts).loss : undefined;
    }
    // A NaN storm: most of the segment's batches were skipped, or the weights or loss went non-finite.
    const nonFinite = !Number.isFinite(heldOutLoss) || (summary.stepsRun > 0 && skippedHere > summary.stepsRun / 2);
    let state = from;
    if (!nonFinite && summary.stepsRun > 0) {
      const w = weights;
      const r = run;
      const meta = { counters: trainer.counters(), trainLoss: summary.finalLoss, heldOutLoss, backend };
      state = await publishState(`runs/${input.runId}/step-${trainer.step}-s${input.segment}`, (dir) =>
        r
          ? saveFinetuneState(dir, r.model, trainer, meta, tokenizer)
          : saveTrainingState(dir, w, trainer.optimizer, meta, trainer.ema?.shadow, tokenizer),
      );
    }
    log.info(
      {
        segment: input.segment,
        endStep: trainer.step,
        trainLoss: summary.finalLoss,
        heldOutLoss,
        heldOutBitsPerByte,
        tokenizer: tokenizer.type,
        vocabSize: tokenizer.vocabSize,
        emaHeldOutLoss,
        ...(finetuneEval && { heldOut: finetuneEval }),
        nonFinite,
        stoppedEarly: summary.stoppedEarly,
      },
      'segment done',
    );
    return {
      segment: input.segment,
      attempt: hooks.attempt,
      startStep,
      endStep: trainer.step,
      state,
      trainLoss: summary.finalLoss,
      heldOutLoss,
      emaHeldOutLoss,
      ...(finetuneEval?.preferenceAccuracy !== undefined && {
        heldOutMetrics: {
          preferenceAccuracy: finetuneEval.preferenceAccuracy,
          rewardMargin: finetuneEval.rewardMargin!,
          chosenLikelier: finetuneEval.chosenLikelier!,
        },
      }),
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
    run?.dispose();
    disposeWeights(weights);
  }
}

function allFinite(weights: Map<string, { dataSync(): ArrayLike<number> }>): boolean {
  for (const w of weights.values()) {
    const a = w.dataSync();
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  }
  return true;
}
