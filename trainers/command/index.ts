// The `command` trainer: any training process (Connito's train.py, miners/torch/train.py, your
// own) run by the gpu worker under supervision. Each segment resumes the process from a state in
// the store (its checkpoint copied into a fresh output folder, where the trainer's own resume logic
// finds it as the newest), with a config written for that attempt (the LR scaled on a backtrack),
// until it writes a checkpoint at the segment's end step or the deadline stops it. Checkpoints go
// to the store as they appear; a crash or hang is retried (Temporal) from the latest one.
import { createHash } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EvalSchema, InvalidInputError, ModelSchema, parseOrExplain, TrainingSchema } from '../../common/config';
import type { LrFindReport, SegmentResult, StateRef } from '../../common/types';
import type { Logger } from '../../infra/log';
import type { CheckpointStore } from '../../infra/store/store';
import { hashSafetensorsFile } from '../../model/hash';
import { suggestFromCurve } from '../../model/lr-finder';
import { chosenLr, REPORT_POINTS } from '../tfjs/lr-find';
import type { ExportedModel, Trainer, TrainProgress } from '../trainer';
import { attemptConfig, fill, toYaml, type PlaceholderValues } from './attempt-config';
import { runSupervised } from './process';
import { CommandTrainerSchema, type CommandTrainerInput } from './schema';
import { EMA_DIR, latestState, publishCheckpoint, restoreCheckpoint, segmentKey } from './states';
import { LiveTrainer, type FollowedSegment } from './live';
import { parseTrainerJson, type ProgressTracker } from './progress';
import { watchTrainer, type WatchOptions } from './supervise';

/** A segment failed more often than trainer.maxRestarts allows: the cycle stops retrying it. */
export class TrainerRestartsExhaustedError extends Error {
  override name = 'TrainerRestartsExhaustedError';
}

/** A state that must not be published (non-finite, no better than the untrained model). */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export function parseCommandTrainer(raw: unknown): CommandTrainerInput {
  return parseOrExplain(CommandTrainerSchema, raw, 'trainer');
}

export function createCommandTrainer(dataDir: string, store: CheckpointStore, log: Logger): Trainer {
  const workRoot = path.join(dataDir, 'work', 'command');
  // trainer.keepAlive: the process each run has running between its segments, and its folders.
  const alive = new Map<string, { live: LiveTrainer; folders: AttemptFolders }>();
  return {
    kind: 'command',

    async trainSegment(req, hooks): Promise<SegmentResult> {
      const cfg = parseCommandTrainer(req.trainer);
      const training = parseOrExplain(TrainingSchema, req.training, 'segment training');
      const model = parseOrExplain(ModelSchema, req.model, 'segment model');
      const segKey = segmentKey(req.runId, req.segment);
      if (hooks.attempt > cfg.maxRestarts + 1)
        throw new TrainerRestartsExhaustedError(
          `segment ${req.segment} failed ${hooks.attempt - 1} times (trainer.maxRestarts ${cfg.maxRestarts}); see the worker log for each failure`,
        );
      // A retry resumes from what the failed attempt saved, not from the segment's start.
      const resumed = hooks.attempt > 1 ? await latestState(store, segKey) : undefined;
      const from: StateRef | null = resumed ?? req.from;
      if (hooks.attempt > 1)
        log.warn(
          {
            segment: req.segment,
            attempt: hooks.attempt,
            resumeFrom: from?.key ?? 'a fresh model',
            step: from?.step ?? 0,
          },
          'trainer restarted',
        );
      const startStep = from?.step ?? 0;
      const lr = training.learningRate * req.lrScale;
      const metrics: string[] = [];
      const onProgress = (t: ProgressTracker) => {
        metrics.push(JSON.stringify({ step: t.step, loss: t.loss, lr: t.lr, tokensPerSec: t.tokensPerSec }));
        hooks.progress({
          stage: 'training',
          segment: req.segment,
          resumeFrom: from?.key ?? null,
          step: t.step,
          totalSteps: req.plannedSteps,
          loss: t.loss,
          auxLoss: t.auxLoss,
          lr: t.lr,
          gradNorm: t.gradNorm,
          tokensPerSec: t.tokensPerSec,
          restores: hooks.attempt - 1,
        } satisfies TrainProgress);
      };
      // Starts the trainer from `from` in a fresh folder with this attempt's config.
      const start = async (dir: string, untilStep: number) => {
        await fs.rm(dir, { recursive: true, force: true });
        const checkpointDir = path.join(dir, 'checkpoints');
        await fs.mkdir(checkpointDir, { recursive: true });
        if (from) await restoreCheckpoint(store, from, checkpointDir);
        const values = await placeholders(store, req.dataset, dir, checkpointDir, {
          lr,
          plannedSteps: req.plannedSteps,
          untilStep,
          model,
          training,
        });
        values.config = await writeAttemptConfig(cfg, cfg.config.set, values, dir);
        log.info(
          { segment: req.segment, attempt: hooks.attempt, from: from?.key ?? null, startStep, untilStep, lr },
          'segment starting',
        );
        const watch = (o: Pick<WatchOptions, 'onProgress' | 'onCheckpoint' | 'stopAt' | 'signal' | 'untilStep'>) =>
          watchTrainer(cfg, log, {
            argv: fill(cfg.command, values, 'trainer.command') as string[],
            cwd: cfg.cwd ?? undefined,
            env: cfg.env,
            checkpointDir,
            startStep,
            tokensPerStep: tokensPerStep(cfg, model, training),
            ...o,
          });
        return { dir, checkpointDir, values, watch };
      };

      let ran: FollowedSegment & AttemptFolders;
      let following: LiveTrainer | undefined; // released when this segment is done, its evaluation included
      if (cfg.keepAlive) {
        // Go on with the run's process if it is exactly where this segment starts; else start one.
        const identity = JSON.stringify([cfg, model, training, lr, req.plannedSteps, req.dataset]);
        let kept = alive.get(req.runId);
        if (!kept || hooks.attempt > 1 || !kept.live.canContinue(identity, from, req.stopAt)) {
          kept?.live.stop(new Error('replaced by a new trainer process'));
          for (const [runId, other] of alive) if (other.live.exited) alive.delete(runId); // runs long done
          const dir = path.join(workRoot, req.runId, `live-segment-${req.segment}`, `attempt-${hooks.attempt}`);
          const started = await start(dir, req.plannedSteps);
          const live = new LiveTrainer({
            runId: req.runId,
            identity,
            segment: req.segment,
            from,
            scratch: path.join(dir, 'meta'),
            idleMs: cfg.keepAlive.idleSeconds * 1000,
            store,
            log,
            watch: started.watch,
          });
          kept = { live, folders: started };
          alive.set(req.runId, kept);
        } else log.info({ segment: req.segment, from: from?.key ?? null }, 'segment goes on with the running trainer');
        const followed = await kept.live.follow(req.segment, req.untilStep, req.stopAt, onProgress, hooks.signal);
        ran = { ...followed, ...kept.folders };
        following = kept.live;
      } else {
        const dir = path.join(workRoot, req.runId, `segment-${req.segment}`, `attempt-${hooks.attempt}`);
        const started = await start(dir, req.untilStep);
        let latest: StateRef | undefined;
        const watched = await started.watch({
          untilStep: req.untilStep,
          stopAt: req.stopAt,
          signal: hooks.signal,
          onProgress,
          async onCheckpoint(c) {
            if (c.step <= startStep) return; // the state it started from
            latest = await publishCheckpoint(store, segKey, c, path.join(dir, 'meta'));
            log.info({ segment: req.segment, step: c.step, key: latest.key }, 'checkpoint published');
            hooks.progress({ stage: 'training', segment: req.segment, checkpoint: latest.key, step: c.step });
          },
        });
        ran = { ...started, ...watched, state: latest };
      }
      try {
        const state = ran.state ?? resumed ?? req.from;
        if (!state) {
          const why = `the trainer wrote no checkpoint in ${ran.checkpointDir} (pattern ${cfg.checkpointPattern}) before it stopped`;
          // At the deadline a retry would stop at once again: nothing to train from, and no time.
          if (ran.stoppedEarly) throw new CheckpointError(`${why} for the training deadline`);
          throw new TrainerCrashedBeforeCheckpoint(why);
        }
        const metricsKey = `${segKey}/metrics-attempt-${hooks.attempt}.jsonl`;
        const metricsFile = path.join(ran.dir, `metrics-segment-${req.segment}.jsonl`);
        await fs.writeFile(metricsFile, metrics.join('\n') + '\n');
        await store.put(metricsKey, metricsFile);
        hooks.progress({ stage: 'evaluating', step: state.step });
        // The state is in the output folder (written or restored there), unless the trainer pruned it.
        let local = path.join(ran.checkpointDir, path.basename(state.key));
        if (!(await exists(local))) local = (await restoreCheckpoint(store, state, path.join(ran.dir, 'eval'))).dir;
        const evalOpts = parseOrExplain(EvalSchema, req.eval, 'segment eval');
        const evalValues = { ...ran.values, maxTokens: evalOpts.maxTokens, batchSize: evalOpts.batchSize };
        const heldOutLoss = await cachedLoss(store, cfg, evalValues, `${state.key}/heldout`, ran.dir, () =>
          runEvaluation(cfg, evalValues, local, log, hooks.signal),
        );
        const t = ran.tracker;
        const result: SegmentResult = {
          segment: req.segment,
          attempt: hooks.attempt,
          startStep: req.from?.step ?? 0,
          endStep: state.step,
          state,
          trainLoss: t?.loss ?? NaN,
          heldOutLoss,
          skippedBatches: 0,
          nonFinite: !Number.isFinite(heldOutLoss),
          stoppedEarly: ran.stoppedEarly,
          seconds: ran.seconds,
          tokensPerSec: t?.tokensPerSec ?? 0,
          lr: t && Number.isFinite(t.lr) ? t.lr : lr,
          backend: 'command',
          metricsKey,
        };
        log.info({ ...result, state: state.key }, 'segment done');
        return result;
      } finally {
        following?.release();
      }
    },
    async findLearningRate(req, hooks): Promise<LrFindReport> {
      const cfg = parseCommandTrainer(req.trainer);
      const training = parseOrExplain(TrainingSchema, req.training, 'LR range test training');
      const model = parseOrExplain(ModelSchema, req.model, 'LR range test model');
      if (!cfg.lrFindSet)
        throw new InvalidInputError(
          'training.lrFind.enabled is true but trainer.lrFindSet is null: say which config keys give the command a ramped LR, or turn the LR range test off',
        );
      const f = training.lrFind;
      const dir = path.join(workRoot, req.runId, 'lr-find', `attempt-${hooks.attempt}`);
      await fs.rm(dir, { recursive: true, force: true });
      const checkpointDir = path.join(dir, 'checkpoints');
      await fs.mkdir(checkpointDir, { recursive: true });
      const values = await placeholders(store, req.dataset, dir, checkpointDir, {
        lr: f.minLr,
        plannedSteps: f.steps,
        untilStep: f.steps,
        model,
        training,
      });
      values.config = await writeAttemptConfig(cfg, { ...cfg.config.set, ...cfg.lrFindSet }, values, dir);
      const curve = new SmoothedCurve();
      const watched = await watchTrainer(cfg, log, {
        argv: fill(cfg.command, values, 'trainer.command') as string[],
        cwd: cfg.cwd ?? undefined,
        env: cfg.env,
        checkpointDir,
        startStep: 0,
        untilStep: f.steps,
        tokensPerStep: tokensPerStep(cfg, model, training),
        stopAt: req.stopAt,
        signal: hooks.signal,
        onProgress(t, u) {
          if (u.lr === undefined) return;
          curve.add(u.lr, t.loss);
          hooks.progress({ stage: 'lrFind', step: curve.points.length, steps: f.steps, lr: u.lr, loss: t.loss });
        },
        onCheckpoint: async () => undefined,
        shouldStop: () => curve.diverged,
      });
      if (curve.points.length < 10)
        throw new LrFindInconclusiveError(
          `LR range test got ${curve.points.length} points from the trainer's progress (${curve.diverged ? 'diverged: lower training.lrFind.minLr' : 'it stopped or the deadline came'}); at least 10 are needed`,
        );
      const centred = curve.centred();
      const s = suggestFromCurve(centred, training.steps);
      const curveKey = `runs/${req.runId}/command/lr-find.jsonl`;
      const curveFile = path.join(dir, 'lr-find.jsonl');
      await fs.writeFile(curveFile, centred.map((p) => JSON.stringify(p)).join('\n') + '\n');
      await store.put(curveKey, curveFile);
      const every = Math.max(1, Math.ceil(curve.points.length / REPORT_POINTS));
      return {
        ...s,
        chosenLr: chosenLr(training, s.suggestedLr),
        diverged: curve.diverged,
        steps: curve.points.length,
        seconds: watched.seconds,
        curve: centred.filter((_, i) => i % every === 0).map((p) => ({ lr: p.lr, loss: p.smoothed })),
        curveKey,
      };
    },

    async exportModel(req, hooks): Promise<ExportedModel> {
      const cfg = parseCommandTrainer(req.trainer);
      const model = parseOrExplain(ModelSchema, req.model, 'checkpoint input model');
      const evalOpts = parseOrExplain(EvalSchema, req.eval, 'checkpoint input eval');
      if (!cfg.export)
        throw new InvalidInputError(
          'trainer.export = null: the command trainer needs an export command to turn a checkpoint into the weights the subnet publishes',
        );
      if (req.state.step <= 0) throw new CheckpointError('refusing to checkpoint the untrained base model (step 0)');
      const dir = path.join(workRoot, 'export', req.state.modelHash);
      await fs.rm(dir, { recursive: true, force: true });
      hooks.progress({ stage: 'verifying' });
      const ckpt = await restoreCheckpoint(store, req.state, dir);
      const values: PlaceholderValues = {
        ...(await placeholders(store, req.dataset, dir, dir, {
          lr: 0,
          plannedSteps: 0,
          untilStep: 0,
          model,
          training: TrainingSchema.parse({}), // an export has no training settings; evaluation reads only the model's
        })),
        maxTokens: evalOpts.maxTokens,
        batchSize: evalOpts.batchSize,
      };
      values.config = await writeAttemptConfig(cfg, cfg.config.set, values, dir);
      hooks.progress({ stage: 'evaluating' });
      // The segment evaluated this state's raw weights with the same command and settings: reused, as
      // is the untrained model's loss. Averaged weights in the checkpoint's ema/ folder (a trainer's
      // signal that it keeps them) are evaluated here, beside the baseline, and published when better.
      const emaDir = path.join(ckpt.dir, EMA_DIR);
      const hasEma = await exists(emaDir);
      const out = path.join(dir, 'model.safetensors');
      const exportOf = (checkpoint: string) =>
        runToEnd(
          fill(cfg.export!, { ...values, checkpoint, out }, 'trainer.export') as string[],
          cfg,
          log,
          hooks.signal,
        );
      // Without EMA weights the choice is made: export.py runs beside the evaluations (each a process start).
      const rawExport = hasEma ? undefined : exportOf(ckpt.dir);
      rawExport?.catch(() => undefined); // awaited below; a failed evaluation must not leave it unhandled
      const [heldOutLoss, baselineLoss, emaLoss] = await Promise.all([
        cachedLoss(store, cfg, values, `${req.state.key}/heldout`, dir, () =>
          runEvaluation(cfg, values, ckpt.dir, log, hooks.signal),
        ),
        cachedLoss(store, cfg, { ...values, model }, 'command/baselines/untrained', dir, () =>
          runEvaluation(cfg, values, '', log, hooks.signal),
        ),
        hasEma
          ? cachedLoss(store, cfg, values, `${req.state.key}/heldout-ema`, dir, () =>
              runEvaluation(cfg, values, emaDir, log, hooks.signal),
            )
          : undefined,
      ]);
      const useEma = emaLoss !== undefined && Number.isFinite(emaLoss) && !(emaLoss >= heldOutLoss);
      const best = useEma ? emaLoss : heldOutLoss;
      if (!Number.isFinite(best)) throw new CheckpointError(`held-out loss of ${req.state.key} is ${best}`);
      if (!(best < baselineLoss))
        throw new CheckpointError(
          `held-out loss ${best.toFixed(4)} is no better than the untrained model's ${baselineLoss.toFixed(4)}: nothing worth publishing`,
        );
      await (rawExport ?? exportOf(useEma ? emaDir : ckpt.dir));
      log.info(
        { state: req.state.key, heldOutLoss: best, rawHeldOutLoss: heldOutLoss, emaHeldOutLoss: emaLoss, baselineLoss },
        `publishing the ${useEma ? 'EMA' : 'raw'} weights`,
      );
      return {
        weightsFile: out,
        modelHash: await hashSafetensorsFile(out),
        files: {},
        heldOutLoss: best,
        heldOutBitsPerByte: best / Math.LN2, // byte-level: one scored token is one byte
        baselineLoss,
        rawHeldOutLoss: heldOutLoss,
        emaHeldOutLoss: emaLoss,
        weights: useEma ? 'ema' : 'raw',
        tokenizer: 'bytes',
        vocabSize: 256,
        model: {
          vocabSize: 256,
          seqLen: model.seqLen,
          dModel: model.dModel,
          nLayer: model.nLayer,
          nHead: model.nHead,
          moe: model.moe,
          seed: model.seed,
        },
      };
    },

    async checkCapacity(req) {
      const cfg = parseCommandTrainer(req.trainer);
      await checkExecutable(cfg.command[0], cfg.cwd, 'trainer.command[0]');
      await checkExecutable(cfg.evaluate[0], cfg.cwd, 'trainer.evaluate[0]');
      if (cfg.export) await checkExecutable(cfg.export[0], cfg.cwd, 'trainer.export[0]');
      return { backend: 'command', estimatedBytes: 0, availableBytes: os.totalmem() };
    },
  };
}

/** Where a trainer process runs: its attempt folder, its output folder, and its config's values. */
interface AttemptFolders {
  dir: string;
  checkpointDir: string;
  values: PlaceholderValues;
}

class TrainerCrashedBeforeCheckpoint extends Error {
  override name = 'TrainerCrashedError';
}

class LrFindInconclusiveError extends Error {
  override name = 'LrFindInconclusiveError';
}

/**
 * The range test's curve. Divergence is watched as model/lr-finder.ts does (a debiased EMA, diverged
 * past 4× the best), but the suggestion reads a centred moving average: an EMA lags its input by
 * about 9 points, and over a short test (60 points spanning five decades) that shifts the steepest
 * descent, and so the suggested LR, several-fold towards larger LRs.
 */
export class SmoothedCurve {
  points: { lr: number; loss: number; smoothed: number }[] = [];
  diverged = false;
  private avg = 0;
  private best = Infinity;
  add(lr: number, loss: number): void {
    if (this.diverged) return;
    if (!Number.isFinite(loss)) {
      this.diverged = true; // a non-finite loss at this LR: as diverged as it gets
      return;
    }
    this.avg = 0.9 * this.avg + 0.1 * loss;
    const smoothed = this.avg / (1 - 0.9 ** (this.points.length + 1));
    this.points.push({ lr, loss, smoothed });
    this.best = Math.min(this.best, smoothed);
    if (this.points.length > 11 && smoothed > 4 * this.best) this.diverged = true;
  }
  /** Each point's loss averaged with its neighbours on both sides (fewer at the ends): no lag. */
  centred(): { lr: number; loss: number; smoothed: number }[] {
    const k = Math.max(2, Math.round(this.points.length / 12));
    return this.points.map((p, i) => {
      const window = this.points.slice(Math.max(0, i - k), i + k + 1);
      return { lr: p.lr, loss: p.loss, smoothed: window.reduce((a, q) => a + q.loss, 0) / window.length };
    });
  }
}

async function placeholders(
  store: CheckpointStore,
  dataset: { trainKey: string; heldOutKey: string },
  workDir: string,
  checkpointDir: string,
  v: { lr: number; plannedSteps: number; untilStep: number; model: unknown; training: unknown },
): Promise<PlaceholderValues> {
  return {
    ...v,
    workDir,
    checkpointDir,
    train: await store.get(dataset.trainKey),
    heldOut: await store.get(dataset.heldOutKey),
  };
}

async function writeAttemptConfig(
  cfg: CommandTrainerInput,
  set: Record<string, unknown>,
  values: PlaceholderValues,
  dir: string,
): Promise<string> {
  const file = path.join(dir, 'config.yaml');
  await fs.writeFile(file, toYaml(attemptConfig(cfg.config.template, set, values)) + '\n');
  return file;
}

function tokensPerStep(
  cfg: CommandTrainerInput,
  model: { seqLen: number },
  training: { batchSize: number; gradAccumSteps: number },
): number {
  if (cfg.progress.format === 'log' && cfg.progress.tokensPerStep !== null) return cfg.progress.tokensPerStep;
  return training.batchSize * training.gradAccumSteps * model.seqLen;
}

/**
 * A held-out loss kept in the store under `prefix`-<hash of what determines it> (the evaluation
 * command, the held-out split, the eval settings, and for the untrained model its architecture), so
 * the checkpoint stage does not start Python again for a number the segment already measured.
 */
async function cachedLoss(
  store: CheckpointStore,
  cfg: CommandTrainerInput,
  values: PlaceholderValues,
  prefix: string,
  scratch: string,
  evaluate: () => Promise<number>,
): Promise<number> {
  const what = JSON.stringify([cfg.evaluate, values.heldOut, values.maxTokens, values.batchSize, values.model]);
  const key = `${prefix}-${createHash('sha256').update(what).digest('hex').slice(0, 16)}.json`;
  if (await store.exists(key))
    return (JSON.parse(await fs.readFile(await store.get(key), 'utf8')) as { loss: number | null }).loss ?? NaN;
  const loss = await evaluate();
  const file = path.join(scratch, `${path.basename(key)}`);
  await fs.mkdir(scratch, { recursive: true });
  await fs.writeFile(file, JSON.stringify({ loss: Number.isFinite(loss) ? loss : null }));
  await store.put(key, file);
  return loss;
}

/** Runs trainer.evaluate on one checkpoint folder ('' for the untrained model); its last JSON line's "loss". */
export async function runEvaluation(
  cfg: CommandTrainerInput,
  values: PlaceholderValues,
  checkpoint: string,
  log: Logger,
  signal: AbortSignal,
): Promise<number> {
  const evalValues = { maxTokens: 16_384, batchSize: 16, ...values, checkpoint };
  const lines = await runToEnd(fill(cfg.evaluate, evalValues, 'trainer.evaluate') as string[], cfg, log, signal);
  for (const line of lines.reverse()) {
    if (!line.trim().startsWith('{')) continue;
    try {
      const loss = (parseTrainerJson(line) as { loss?: unknown }).loss;
      if (loss === null) return NaN;
      if (typeof loss === 'number') return loss;
    } catch {
      // not the result line
    }
  }
  throw new Error(`trainer.evaluate printed no JSON line with "loss" (${cfg.evaluate.join(' ')})`);
}

/** Runs a short command (evaluation, export) supervised like the trainer; its stdout lines. */
async function runToEnd(argv: string[], cfg: CommandTrainerInput, log: Logger, signal: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  const err: string[] = [];
  const proc = runSupervised({
    argv,
    cwd: cfg.cwd ?? undefined,
    env: cfg.env,
    onLine: (line, stream) => (stream === 'stdout' ? out : err).push(line),
  });
  const onAbort = () => proc.kill();
  signal.addEventListener('abort', onAbort);
  try {
    const exit = await proc.exited;
    if (signal.aborted) throw signal.reason ?? new Error('cancelled');
    if (exit.code !== 0)
      throw new Error(`${argv.join(' ')} exited with status ${exit.code}: ${err.slice(-10).join('\n')}`);
    log.debug({ argv }, 'command done');
    return out;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

async function checkExecutable(cmd: string, cwd: string | null, field: string): Promise<void> {
  if (!cmd.includes('/')) return; // found on PATH when run; a missing one fails the first segment with its name
  const file = path.resolve(cwd ?? '.', cmd);
  try {
    await fs.access(file, fsConstants.X_OK);
  } catch {
    throw new InvalidInputError(`${field} = ${JSON.stringify(cmd)}: no executable at ${file}`);
  }
}

export type { CommandTrainerInput } from './schema';
export { torchMinerTrainer } from './torch-miner';
