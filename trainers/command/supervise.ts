// One run of an external trainer under watch: progress from its output (or Prometheus), new
// checkpoints published as they appear, and the reasons to stop it — its target step reached, the
// deadline, a hang, cancellation — each handled the same way: SIGINT → SIGTERM → SIGKILL.
import type { Logger } from '../../infra/log';
import { discoverCheckpoints, type FoundCheckpoint } from './checkpoints';
import { runSupervised, type ExitStatus } from './process';
import { makeLogParser, parseProtocolLine, parsePrometheus, ProgressTracker, type ProgressUpdate } from './progress';
import type { CommandTrainerInput } from './schema';

/** The trainer exited non-zero on its own: the segment is retried from its latest checkpoint. */
export class TrainerCrashedError extends Error {
  override name = 'TrainerCrashedError';
}
/** No progress for trainer.stallSeconds: killed, and retried like a crash. */
export class TrainerStalledError extends Error {
  override name = 'TrainerStalledError';
}

export interface WatchOptions {
  argv: string[];
  cwd?: string;
  env: Record<string, string>;
  checkpointDir: string;
  startStep: number;
  untilStep: number; // stop once a checkpoint at or past it exists
  tokensPerStep: number;
  /** Epoch ms the trainer must be gone by; a function is read again each poll (a kept-alive trainer's deadline moves). */
  stopAt?: number | (() => number | undefined);
  signal: AbortSignal;
  onProgress: (t: ProgressTracker, u: ProgressUpdate) => void;
  onCheckpoint: (c: FoundCheckpoint) => Promise<void>; // called once per new checkpoint, in order
  /** Stop now (e.g. the LR range test diverged). */
  shouldStop?: (t: ProgressTracker) => boolean;
}

export interface WatchResult {
  exit: ExitStatus;
  stoppedEarly: boolean; // stopped at the deadline
  tracker: ProgressTracker;
  seconds: number;
}

const POLL_MS = 1000;

export async function watchTrainer(cfg: CommandTrainerInput, log: Logger, opts: WatchOptions): Promise<WatchResult> {
  const started = Date.now();
  const tracker = new ProgressTracker(opts.startStep, opts.tokensPerStep, started);
  const seen = new Set((await discoverCheckpoints(opts.checkpointDir, cfg.checkpointPattern)).map((c) => c.name));
  const parseLog = cfg.progress.format === 'log' ? makeLogParser(cfg.progress.patterns) : undefined;
  const tail: string[] = []; // the last lines, for a crash report
  const apply = (u: ProgressUpdate) => {
    tracker.apply(u, Date.now());
    opts.onProgress(tracker, u);
  };
  const proc = runSupervised({
    argv: opts.argv,
    cwd: opts.cwd,
    env: opts.env,
    onLine(line) {
      tail.push(line);
      if (tail.length > 30) tail.shift();
      if (cfg.progress.format === 'jsonl') {
        const msg = parseProtocolLine(line);
        if (msg.type === 'progress') return apply(msg.update);
        if (msg.type === 'invalid')
          log.warn({ problem: msg.problem }, 'trainer sent an invalid protocol line; ignored');
        if (msg.type !== 'none') return;
      } else if (parseLog) {
        const u = parseLog(line);
        if (u) return apply(u);
      }
      log.debug({ line }, 'trainer');
    },
  });
  log.info({ argv: opts.argv, pgid: proc.pgid, cwd: opts.cwd }, 'trainer started');
  const grace = {
    sigintGraceMs: cfg.stop.sigintGraceSeconds * 1000,
    sigtermGraceMs: cfg.stop.sigtermGraceSeconds * 1000,
  };
  let stopping: Promise<ExitStatus> | undefined;
  let stoppedEarly = false;
  let stalled = false;
  let exited = false;
  const stop = (why: string) => {
    if (stopping || exited) return;
    log.info({ why, step: tracker.step }, 'stopping the trainer');
    stopping = proc.stop(grace);
  };
  const onAbort = () => proc.kill();
  opts.signal.addEventListener('abort', onAbort);
  // Publishing runs one at a time, in order: a checkpoint is never announced before the one before it.
  let publishing = Promise.resolve();
  const discover = () =>
    (publishing = publishing.then(async () => {
      for (const c of await discoverCheckpoints(opts.checkpointDir, cfg.checkpointPattern)) {
        if (seen.has(c.name)) continue;
        seen.add(c.name);
        await opts.onCheckpoint(c);
        if (c.step >= opts.untilStep)
          stop(`checkpoint at step ${c.step} reached the segment's end (${opts.untilStep})`);
      }
    }));
  const scrape =
    cfg.progress.format === 'prometheus'
      ? prometheusScraper(cfg.progress, opts.startStep, apply, log)
      : async () => undefined;
  let lastScrape = 0;
  const stopBy = () => {
    const at = typeof opts.stopAt === 'function' ? opts.stopAt() : opts.stopAt;
    return at === undefined ? undefined : at - grace.sigintGraceMs - grace.sigtermGraceMs;
  };
  const timer = setInterval(() => {
    const now = Date.now();
    void discover().catch((err: unknown) => log.error({ err }, 'publishing a checkpoint failed'));
    if (cfg.progress.format === 'prometheus' && now - lastScrape >= cfg.progress.intervalSeconds * 1000) {
      lastScrape = now;
      void scrape();
    }
    const by = stopBy();
    if (by !== undefined && now >= by && !stopping) {
      stoppedEarly = true;
      stop('the training deadline');
    }
    if (opts.shouldStop?.(tracker)) stop('asked to');
    if (!stopping && now - tracker.lastUpdateAt > cfg.stallSeconds * 1000) {
      stalled = true;
      log.error({ seconds: cfg.stallSeconds, step: tracker.step }, 'trainer made no progress; killing it');
      proc.kill();
    }
  }, POLL_MS);
  let exit: ExitStatus;
  try {
    exit = await proc.exited;
    exited = true;
  } finally {
    clearInterval(timer);
    opts.signal.removeEventListener('abort', onAbort);
  }
  await discover(); // what it wrote on its way out
  await publishing;
  if (opts.signal.aborted) throw opts.signal.reason ?? new Error('cancelled');
  if (stalled)
    throw new TrainerStalledError(
      `trainer made no progress for ${cfg.stallSeconds} s (trainer.stallSeconds) at step ${tracker.step}; killed`,
    );
  if (exit.code !== 0 && !exit.requested)
    throw new TrainerCrashedError(
      `trainer exited with status ${exit.code} at step ${tracker.step} (${opts.argv.join(' ')}); last output:\n${tail.join('\n')}`,
    );
  return { exit, stoppedEarly, tracker, seconds: (Date.now() - started) / 1000 };
}

function prometheusScraper(
  src: Extract<CommandTrainerInput['progress'], { format: 'prometheus' }>,
  startStep: number,
  apply: (u: ProgressUpdate) => void,
  log: Logger,
): () => Promise<void> {
  let lastLoss: number | undefined;
  let counted = 0;
  return async () => {
    try {
      const res = await fetch(src.url, { signal: AbortSignal.timeout(2000) });
      if (!res.ok) return;
      const m = parsePrometheus(await res.text());
      const loss = m.get(src.metrics.loss);
      if (loss === undefined) return;
      // Connito exports no step counter: each new loss value is taken as one more step seen.
      if (loss !== lastLoss) counted++;
      lastLoss = loss;
      const stepMetric = src.metrics.step ? m.get(src.metrics.step) : undefined;
      apply({
        loss,
        lr: m.get(src.metrics.lr),
        tokensPerSec: m.get(src.metrics.tokensPerSec),
        ...(stepMetric !== undefined ? { step: stepMetric } : {}),
        ...(src.metrics.step === null ? { step: startStep + counted } : {}),
      });
    } catch (err) {
      log.debug({ err }, 'prometheus scrape failed (the trainer may still be starting)');
    }
  };
}
