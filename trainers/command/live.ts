// A trainer kept alive across segments (trainer.keepAlive). A segment boundary is where the loop
// looks at the run — a checkpoint evaluated, the policy asked — not where the process must stop:
// the next segment adopts the running process when it goes on exactly where the last one ended, so
// the trainer starts (Python, imports, data) once per run instead of once per segment, and each
// segment's evaluation runs while it keeps training. Its checkpoints are published as they appear,
// under the segment they belong to, so a retry resumes from them as it would from a one-shot run.
import type { StateRef } from '../../common/types';
import type { Logger } from '../../infra/log';
import type { CheckpointStore } from '../../infra/store/store';
import type { FoundCheckpoint } from './checkpoints';
import type { ProgressTracker } from './progress';
import { publishCheckpoint, segmentKey } from './states';
import type { WatchOptions, WatchResult } from './supervise';

/** What a segment gets from the process: its end state (undefined: none written), and why it ended. */
export interface FollowedSegment {
  state: StateRef | undefined;
  stoppedEarly: boolean; // the deadline stopped the process before the segment's end step
  seconds: number; // training time of this segment: since the state it started from appeared
  tracker: ProgressTracker | undefined;
}

interface Follower {
  segment: number;
  untilStep: number;
  onProgress: (t: ProgressTracker) => void;
  settle: (r: FollowedSegment | Error) => void;
}

export interface LiveTrainerOptions {
  runId: string;
  /** What the process was started with (config, LR, planned steps, data): a segment asking for the same may adopt it. */
  identity: string;
  /** The segment that started it, and the state it started from. */
  segment: number;
  from: StateRef | null;
  scratch: string; // for checkpoint metadata files
  idleMs: number;
  store: CheckpointStore;
  log: Logger;
  /** Starts watching the process (watchTrainer), with these hooks filled in. */
  watch: (
    hooks: Pick<WatchOptions, 'onProgress' | 'onCheckpoint' | 'stopAt' | 'signal' | 'untilStep'>,
  ) => Promise<WatchResult>;
}

export class LiveTrainer {
  readonly runId: string;
  readonly identity: string;
  /** States it published, in training order. */
  readonly states: StateRef[] = [];
  /** The state the last segment returned: the only one a next segment may go on from. */
  returned: StateRef | null;
  exited = false;
  stopAt: number | undefined;
  private result: WatchResult | undefined;
  private failure: Error | undefined;
  private follower: Follower | undefined;
  private nextSegment: number; // whose folder a checkpoint goes to while no segment follows
  private lastEndAt = Date.now(); // when `returned` appeared (or the process started)
  private tracker: ProgressTracker | undefined;
  private idle: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private publishing = Promise.resolve();

  constructor(private readonly opts: LiveTrainerOptions) {
    this.runId = opts.runId;
    this.identity = opts.identity;
    this.returned = opts.from;
    this.nextSegment = opts.segment;
    const startStep = opts.from?.step ?? 0;
    opts
      .watch({
        untilStep: Infinity, // segment ends are ours to see; the trainer runs to its planned steps
        stopAt: () => this.stopAt,
        signal: this.abort.signal,
        onProgress: (t) => {
          this.tracker = t;
          this.follower?.onProgress(t);
        },
        onCheckpoint: (c) => (c.step > startStep ? this.publish(c) : Promise.resolve()),
      })
      .then(
        (r) => (this.result = r),
        (err: unknown) => (this.failure = err instanceof Error ? err : new Error(String(err))),
      )
      .finally(() => {
        this.exited = true;
        clearTimeout(this.idle);
        this.settleFromExit();
      });
  }

  /**
   * Whether a segment asking for this may go on with this process instead of starting another. One
   * that has exited cleanly still can (the segment gets what it wrote after the last segment's
   * state) if it ran its planned steps, or if the deadline that stopped it between segments still
   * holds: a deadline moved later by a re-plan needs a process that trains on.
   */
  canContinue(identity: string, from: StateRef | null, stopAt: number | undefined): boolean {
    if (this.failure || identity !== this.identity || from?.key !== this.returned?.key) return false;
    if (!this.exited || !this.result?.stoppedEarly) return true;
    return stopAt !== undefined && this.stopAt !== undefined && stopAt <= this.stopAt;
  }

  /**
   * Follows the process until its first state at or past `untilStep` (or its exit: the deadline, the
   * end of its planned steps, a crash). A state it already wrote while no segment followed counts.
   */
  follow(
    segment: number,
    untilStep: number,
    stopAt: number | undefined,
    onProgress: (t: ProgressTracker) => void,
    signal: AbortSignal,
  ): Promise<FollowedSegment> {
    clearTimeout(this.idle);
    this.stopAt = stopAt;
    this.nextSegment = segment;
    return new Promise<FollowedSegment>((resolve, reject) => {
      const onAbort = () => this.stop(signal.reason instanceof Error ? signal.reason : new Error('cancelled'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.follower = {
        segment,
        untilStep,
        onProgress,
        settle: (r) => {
          signal.removeEventListener('abort', onAbort);
          this.follower = undefined;
          if (r instanceof Error) return reject(r);
          this.nextSegment = segment + 1;
          this.returned = r.state ?? this.returned;
          this.lastEndAt = Date.now();
          resolve(r);
        },
      };
      const done = this.states.find((s) => s.step >= untilStep);
      if (done) this.settle(done, false);
      else if (this.exited) this.settleFromExit();
    });
  }

  /** The segment is done with it: stopped if no segment adopts it within the idle time. */
  release(): void {
    if (this.exited || this.follower) return;
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      this.opts.log.info(
        { runId: this.runId, idleMs: this.opts.idleMs },
        'no segment adopted the trainer; stopping it',
      );
      this.stop(new Error('idle'));
    }, this.opts.idleMs).unref();
  }

  /** Kills the process group now; a follower gets `why`. */
  stop(why: Error): void {
    this.failure ??= why;
    this.abort.abort(why);
  }

  private publish(c: FoundCheckpoint): Promise<void> {
    const segment = this.follower?.segment ?? this.nextSegment;
    return (this.publishing = this.publishing.then(async () => {
      const state = await publishCheckpoint(this.opts.store, segmentKey(this.runId, segment), c, this.opts.scratch);
      this.states.push(state);
      this.opts.log.info({ segment, step: c.step, key: state.key }, 'checkpoint published');
      if (this.follower && state.step >= this.follower.untilStep) this.settle(state, false);
    }));
  }

  private settle(state: StateRef | undefined, stoppedEarly: boolean): void {
    this.follower?.settle({
      state,
      stoppedEarly,
      seconds: (Date.now() - this.lastEndAt) / 1000,
      tracker: this.tracker,
    });
  }

  private settleFromExit(): void {
    if (!this.follower || !this.exited) return;
    if (this.failure && !this.result) return this.follower.settle(this.failure);
    const after = this.states.filter((s) => s.step > (this.returned?.step ?? 0));
    this.settle(after.at(-1), this.result?.stoppedEarly ?? false);
  }
}
