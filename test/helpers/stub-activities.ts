// Stub activities for the time-skipping cycle tests, and the simulated chain they commit to.
//
// Everything runs on the test server's clock (env.currentTimeMs()), never Date.now(): the server
// skips time, so wall time says nothing about blocks. An activity "takes" simulated time with
// env.sleep(ms), which unlocks time skipping for that long (the server jumps its clock; timers that
// fall due on the way fire). The chain is the real phase arithmetic of common/phases.ts (planCommit,
// phaseWindow, roundOf) over the blocks of a SimChain: one every blockMs from originMs, at a rate
// a test may change (SimChain.slowDown).
//
// Each workflow gets its own Scenario (looked up by the activity's workflow id), so cycles can run
// side by side on one server. Keep every activity the workflow calls here, with the real
// activities' names and shapes (activities/*.ts): when the workflow's activity list changes, this
// is the one file to adapt.
import { createHash } from 'node:crypto';
import { activityInfo, ApplicationFailure, heartbeat } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { CheckpointActivityInput } from '../../subnets/connito/checkpoint';
import type { CommitActivityInput, LocationCommitInput } from '../../subnets/connito/commit';
import type { PreflightReport } from '../../subnets/connito/preflight';
import type { Capacity, CapacityRequest, LrFindRequest, SegmentRequest } from '../../trainers/trainer';
import { encodeLocationCommit, encodeSignatureCommit } from '../../subnets/connito/commitments';
import type { CorpusInput, CurateInput } from '../../common/config';
import {
  CONNITO_PHASES,
  phaseWindow,
  planCommit,
  roundOf,
  type ChainSchedule,
  type PhaseSpec,
} from '../../subnets/connito/phases';
import type { DatasetRef, LrFindReport, SegmentResult, StateRef } from '../../common/types';
import type { CheckpointRef, CommitPlan, CommitReceipt, CommitWindow, ScoreReport } from '../../subnets/connito/types';

/** subnets/connito/commit.ts's COMMIT_MARGIN_MS (not exported there): time wanted left in a window. */
export const COMMIT_MARGIN_MS = 1500;
/** subnets/connito/commit.ts's EARLY_WAIT_MS: how long a commit early for its window waits in the activity. */
export const EARLY_WAIT_MS = 30_000;

export type ActivityName =
  | 'preflight'
  | 'checkTrainer'
  | 'curateCorpus'
  | 'planCommit'
  | 'commitSignature'
  | 'commitLocation'
  | 'awaitScore'
  | 'trainSegment'
  | 'lrFind'
  | 'checkpoint';

export interface Commitment {
  phase: CommitReceipt['phase'];
  round: number; // the round of the window the workflow asked for
  block: number; // the block it was recorded at
  atMs: number;
  hash: string;
  payload: string;
}

/** How many recent blocks infra/chain/subtensor.ts measures the chain's block time over (its OBSERVED_BLOCKS). */
export const OBSERVED_BLOCKS = 20;

/** From block `fromBlock`, made at `fromMs`, the chain makes a block every `blockMs`. */
interface BlockRate {
  fromBlock: number;
  fromMs: number;
  blockMs: number;
}

/**
 * A chain whose clock is the test server's. Its block time can change (slowDown): each change
 * starts at a block boundary, so block numbers and block times stay exact integers.
 */
export class SimChain {
  readonly commitments: Commitment[] = [];
  private rates: BlockRate[];
  constructor(
    public originMs: number,
    blockMs = 12_000,
    readonly phases: PhaseSpec[] = CONNITO_PHASES,
  ) {
    this.rates = [{ fromBlock: 0, fromMs: originMs, blockMs }];
  }

  /** The chain starts over at block 0 (a devnet restarted, a node pointed at another chain), at the rate it made last. */
  reset(nowMs: number): void {
    this.originMs = nowMs;
    this.rates = [{ fromBlock: 0, fromMs: nowMs, blockMs: this.rates.at(-1)!.blockMs }];
  }

  /**
   * From the first block made at or after `atMs` on, a block every `blockMs` (slower or faster: a
   * busy devnet, a real chain drifting); blocks before keep the old rate. `atMs` may be in the future.
   */
  slowDown(atMs: number, blockMs: number): void {
    const last = this.rates.at(-1)!;
    if (!(blockMs > 0)) throw new Error(`SimChain.slowDown: blockMs must be > 0, got ${blockMs}`);
    if (atMs < last.fromMs)
      throw new Error(`SimChain.slowDown: atMs ${atMs} is before the last change of rate (${last.fromMs})`);
    const fromBlock = last.fromBlock + Math.ceil((atMs - last.fromMs) / last.blockMs);
    this.rates.push({ fromBlock, fromMs: this.timeOfBlock(fromBlock), blockMs });
  }

  /** The head at `ms`: the last block made by then. */
  blockAt(ms: number): number {
    const r = this.rateWhere((x) => x.fromMs <= ms);
    return r.fromBlock + Math.floor((ms - r.fromMs) / r.blockMs);
  }

  /** When `block` is (or was) made. */
  timeOfBlock(block: number): number {
    const r = this.rateWhere((x) => x.fromBlock <= block);
    return r.fromMs + (block - r.fromBlock) * r.blockMs;
  }

  /** The block time at `ms`: what the chain is making then. */
  blockMsAt(ms: number): number {
    return this.rateWhere((x) => x.fromMs <= ms).blockMs;
  }

  /** The last rate (they are in time order) that `applies` to; the first for times before the origin. */
  private rateWhere(applies: (r: BlockRate) => boolean): BlockRate {
    for (let i = this.rates.length - 1; i > 0; i--) if (applies(this.rates[i]!)) return this.rates[i]!;
    return this.rates[0]!;
  }

  /**
   * What the real adapter (infra/chain/subtensor.ts schedule()) reads: the head, when it was made,
   * and the block time measured over the last OBSERVED_BLOCKS blocks, so a change of rate shows in
   * the projection gradually, as it does on a real chain.
   */
  schedule(nowMs: number): ChainSchedule {
    const block = this.blockAt(nowMs);
    const atMs = this.timeOfBlock(block);
    const back = Math.min(OBSERVED_BLOCKS, block);
    const blockMs = back > 0 ? (atMs - this.timeOfBlock(block - back)) / back : this.blockMsAt(nowMs);
    return { block, atMs, blockMs, origin: 0, phases: this.phases };
  }

  /** [start, end) blocks of a phase in a round. */
  window(round: number, phase: 'MinerCommit1' | 'MinerCommit2' | 'Validate' | string): { start: number; end: number } {
    return phaseWindow({ origin: 0, phases: this.phases }, round, phase);
  }

  /** Blocks where commit 1 of `round` may land: MinerCommit1. */
  commit1Blocks(round: number): { start: number; end: number } {
    return this.window(round, 'MinerCommit1');
  }

  /** Blocks where commit 2 of `round` may land: after MinerCommit1, before MinerCommit2 ends. */
  commit2Blocks(round: number): { start: number; end: number } {
    return { start: this.window(round, 'MinerCommit1').end, end: this.window(round, 'MinerCommit2').end };
  }

  roundAt(ms: number): number {
    return roundOf({ origin: 0, phases: this.phases }, this.blockAt(ms));
  }

  /** The real planner (common/phases.ts) on the chain as it is at `nowMs`. */
  plan(nowMs: number, minLeadMs = 0): CommitPlan {
    return planCommit(this.schedule(nowMs), nowMs, COMMIT_MARGIN_MS, minLeadMs);
  }

  /** `round`'s windows, re-read from the chain at `nowMs` (planCommit({round})), by the real planner. */
  planRound(nowMs: number, round: number): CommitPlan {
    return planCommit(this.schedule(nowMs), nowMs, COMMIT_MARGIN_MS, 0, round);
  }
}

/** A loss curve falling with steps: what a stub segment reports unless the scenario overrides it. */
export function defaultHeldOutLoss(step: number): number {
  return 2 + 4 * Math.exp(-step / 150);
}

export interface SegmentOverride {
  heldOutLoss?: number; // NaN allowed
  trainLoss?: number;
  nonFinite?: boolean;
  skippedBatches?: number;
}

export interface TrainCall {
  segment: number;
  attempt: number;
  fromStep: number;
  fromKey: string | null;
  untilStep: number;
  plannedSteps: number;
  stopAt?: number;
  lrScale: number;
  startMs: number;
  endMs: number;
  result: SegmentResult;
}

export interface ActivityCall {
  activity: ActivityName;
  activityId: string;
  callIndex: number; // 0-based: the n-th logical call of this activity in the workflow (retries share it)
  attempt: number;
  startMs: number; // simulated
  endMs?: number;
  delayMs: number;
  outcome?: 'ok' | 'restart' | 'missed' | 'early' | 'error';
  round?: number; // commits: the round of the window asked for
  detail?: string;
}

export interface ScenarioOptions {
  chain: SimChain;
  /** Simulated time per training step. */
  msPerStep?: number;
  /** Per-segment loss overrides (a spike, NaN…); undefined keeps defaultHeldOutLoss. */
  loss?: (seg: {
    segment: number;
    attempt: number;
    startStep: number;
    endStep: number;
    lrScale: number;
  }) => SegmentOverride | undefined;
  /** What the validators report for a round (e.g. a rejection); undefined: scored with the committed state's loss. */
  score?: (round: number) => Partial<ScoreReport> | undefined;
  /** Simulated time an activity attempt takes before doing its work (for commits: before the chain sees it). */
  delay?: (activity: ActivityName, callIndex: number, attempt: number) => number;
  /** A simulated worker restart: the attempt fails retryably after its delay, and Temporal retries it. */
  restart?: (activity: ActivityName, callIndex: number, attempt: number) => boolean;
}

/** One workflow's world: its chain, its fault plan and a ledger of everything its activities did. */
export class Scenario {
  readonly chain: SimChain;
  readonly msPerStep: number;
  readonly calls: ActivityCall[] = [];
  readonly trains: TrainCall[] = [];
  readonly plans: { atMs: number; args: { minLeadMs?: number; round?: number }; plan: CommitPlan }[] = [];
  readonly checkpoints: { atMs: number; state: StateRef; round: number; ref: CheckpointRef }[] = [];
  /** Every state a segment produced, by key, with its held-out loss. */
  readonly states = new Map<string, SegmentResult>();
  private readonly callIds = new Map<string, number>();
  private readonly callCounts = new Map<ActivityName, number>();

  constructor(readonly opts: ScenarioOptions) {
    this.chain = opts.chain;
    this.msPerStep = opts.msPerStep ?? 1000;
  }

  /** The logical call index of the running activity (stable across its retries). */
  callIndex(activity: ActivityName, activityId: string): number {
    const key = `${activity}/${activityId}`;
    let i = this.callIds.get(key);
    if (i === undefined) {
      i = this.callCounts.get(activity) ?? 0;
      this.callCounts.set(activity, i + 1);
      this.callIds.set(key, i);
    }
    return i;
  }

  delayFor(activity: ActivityName, callIndex: number, attempt: number): number {
    return this.opts.delay?.(activity, callIndex, attempt) ?? 0;
  }

  restartFor(activity: ActivityName, callIndex: number, attempt: number): boolean {
    return this.opts.restart?.(activity, callIndex, attempt) ?? false;
  }

  callsOf(activity: ActivityName): ActivityCall[] {
    return this.calls.filter((c) => c.activity === activity);
  }
}

/** A deterministic 48-hex "model hash" of a state key (what checkpoint publishes). */
export function hashOfState(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 48);
}

/**
 * The stub activities, on the control and gpu queues, for every workflow registered in `scenarios`
 * (by workflow id). `env` provides the simulated clock.
 */
export function createStubActivities(env: TestWorkflowEnvironment, scenarios: Map<string, Scenario>) {
  const now = () => env.currentTimeMs();

  /**
   * Simulated time passes; long waits heartbeat, as the real activities do, so no heartbeat timeout
   * fires. A heartbeat reaches the server a moment after the clock moved, so each step stays well
   * under the activity's heartbeat timeout: 1 s for the commits (5 s), 20 s for the rest (≥ 1 min).
   */
  async function simSleep(ms: number): Promise<void> {
    const activity = activityInfo().activityType;
    const stepMs = activity === 'commitSignature' || activity === 'commitLocation' ? 1_000 : 20_000;
    let left = Math.max(0, Math.round(ms));
    while (left > 0) {
      const step = Math.min(left, stepMs);
      await env.sleep(step);
      left -= step;
      heartbeat();
    }
  }

  /**
   * Runs one activity attempt: finds its scenario, takes the scenario's delay, fails it as a worker
   * restart would if the scenario says so, then does `work` and records the call.
   */
  async function run<T>(
    activity: ActivityName,
    work: (s: Scenario, call: ActivityCall) => Promise<T>,
    round?: number,
  ): Promise<T> {
    const info = activityInfo();
    const workflowId = info.workflowExecution?.workflowId ?? '(none)';
    const s = scenarios.get(workflowId);
    if (!s) throw ApplicationFailure.nonRetryable(`no scenario for workflow ${workflowId}`, 'NoScenario');
    const callIndex = s.callIndex(activity, info.activityId);
    const call: ActivityCall = {
      activity,
      activityId: info.activityId,
      callIndex,
      attempt: info.attempt,
      startMs: await now(),
      delayMs: s.delayFor(activity, callIndex, info.attempt),
      round,
    };
    s.calls.push(call);
    try {
      await simSleep(call.delayMs);
      if (s.restartFor(activity, callIndex, info.attempt)) {
        call.outcome = 'restart';
        throw new Error(`simulated worker restart during ${activity} (attempt ${info.attempt})`);
      }
      const result = await work(s, call);
      call.outcome ??= 'ok';
      return result;
    } catch (err) {
      call.outcome ??= 'error';
      call.detail = err instanceof Error ? err.message : String(err);
      throw err;
    } finally {
      call.endMs = await now();
    }
  }

  /**
   * As subnets/connito/commit.ts: by block, the transaction lands in the block after the head; a
   * commit early by up to EARLY_WAIT_MS waits in the activity, earlier is a retryable error, past
   * the window is MissedWindowError.
   */
  async function commit(
    s: Scenario,
    call: ActivityCall,
    phase: CommitReceipt['phase'],
    w: CommitWindow,
    hash: string,
    payload: string,
  ): Promise<CommitReceipt> {
    const startBlock = w.startBlock!;
    const endBlock = w.endBlock!;
    let next = s.chain.blockAt(await now()) + 1;
    const chain = s.chain;
    if (next < startBlock && chain.timeOfBlock(startBlock - 1) - chain.timeOfBlock(next - 1) <= EARLY_WAIT_MS) {
      await simSleep(chain.timeOfBlock(startBlock - 1) - (await now()));
      next = s.chain.blockAt(await now()) + 1;
    }
    if (next < startBlock) {
      call.outcome = 'early';
      throw new Error(
        `${phase} window of round ${w.round} opens at block ${startBlock}; the next block is ${next}; retrying`,
      );
    }
    if (next >= endBlock) {
      call.outcome = 'missed';
      // What mapErrors makes of activities/errors.ts's MissedWindowError.
      throw ApplicationFailure.nonRetryable(
        `${phase} window of round ${w.round} (blocks ${startBlock}–${endBlock - 1}) closed: the next block is ${next}`,
        'MissedWindowError',
      );
    }
    s.chain.commitments.push({ phase, round: w.round, block: next, atMs: await now(), hash, payload });
    return { phase, block: next, payload, bytes: Buffer.byteLength(payload) };
  }

  const control = {
    async preflight(_input: { miner: unknown }): Promise<PreflightReport> {
      return run('preflight', async (s) => ({
        hotkey: '5SimulatedHotkey',
        uid: 1,
        block: s.chain.blockAt(await now()),
        store: 'sim://store',
      }));
    },

    async curateCorpus(_input: { corpus: CorpusInput; curate: CurateInput }): Promise<DatasetRef> {
      return run('curateCorpus', async () => ({
        id: 'd'.repeat(64),
        trainKey: 'datasets/sim/train.jsonl',
        heldOutKey: 'datasets/sim/held-out.jsonl',
        reportKey: 'datasets/sim/report.json',
        documentsIn: 500,
        trainDocuments: 476,
        heldOutDocuments: 24,
        dropped: {},
        reused: false,
      }));
    },

    /** The real planner on the simulated chain; with `round`, that exact round's windows. */
    async planCommit(input: { minLeadMs?: number; round?: number } = {}): Promise<CommitPlan> {
      return run('planCommit', async (s) => {
        const t = await now();
        const plan =
          input.round !== undefined ? s.chain.planRound(t, input.round) : s.chain.plan(t, input.minLeadMs ?? 0);
        s.plans.push({ atMs: t, args: { ...input }, plan });
        return plan;
      });
    },

    async commitSignature(input: CommitActivityInput): Promise<CommitReceipt> {
      return run(
        'commitSignature',
        (s, call) =>
          commit(
            s,
            call,
            'commit1',
            input.window,
            input.hash,
            encodeSignatureCommit(Buffer.from(`sig:${input.hash}`).toString('base64url').slice(0, 86)),
          ),
        input.window.round,
      );
    },

    async commitLocation(input: LocationCommitInput): Promise<CommitReceipt> {
      return run(
        'commitLocation',
        (s, call) =>
          commit(
            s,
            call,
            'commit2',
            input.window,
            input.hash,
            encodeLocationCommit({ ...(input.commit ?? { v: 0 }), h: input.hash }),
          ),
        input.window.round,
      );
    },

    async awaitScore(input: {
      miner: unknown;
      round: number;
      validateStartBlock: number;
      timeoutSeconds: number;
      pollSeconds: number;
    }): Promise<ScoreReport> {
      return run('awaitScore', async (s) => {
        const c2 = s.chain.commitments.filter((c) => c.phase === 'commit2' && c.round === input.round).at(-1);
        const state = c2 && [...s.states.values()].find((r) => hashOfState(r.state.key) === c2.hash);
        return {
          status: 'scored',
          round: input.round,
          hotkey: '5SimulatedHotkey',
          uid: 1,
          incentiveShare: 1,
          validatorLoss: state?.heldOutLoss,
          rank: 1,
          reward: 2.25,
          ...s.opts.score?.(input.round),
        };
      });
    },
  };

  const gpu = {
    async checkTrainer(_input: CapacityRequest): Promise<Capacity> {
      return run('checkTrainer', async () => ({ backend: 'sim', estimatedBytes: 2 ** 20, availableBytes: 2 ** 30 }));
    },

    /** Trains from `from` to `untilStep` at the scenario's ms/step, stopping early at `stopAt`. */
    async trainSegment(input: SegmentRequest): Promise<SegmentResult> {
      return run('trainSegment', async (s) => {
        const startStep = input.from?.step ?? 0;
        const t0 = await now();
        let endStep = Math.max(startStep, input.untilStep);
        let stoppedEarly = false;
        if (input.stopAt !== undefined && t0 + (endStep - startStep) * s.msPerStep > input.stopAt) {
          endStep = startStep + Math.max(0, Math.floor((input.stopAt - t0) / s.msPerStep));
          stoppedEarly = true;
        }
        await simSleep((endStep - startStep) * s.msPerStep);
        const attempt = activityInfo().attempt;
        const o = s.opts.loss?.({ segment: input.segment, attempt, startStep, endStep, lrScale: input.lrScale }) ?? {};
        const heldOutLoss = o.heldOutLoss ?? defaultHeldOutLoss(endStep);
        const key = `runs/${input.runId}/segment-${input.segment}-attempt-${attempt}/step-${endStep}`;
        const result: SegmentResult = {
          segment: input.segment,
          attempt,
          startStep,
          endStep,
          state: { key, step: endStep, modelHash: hashOfState(key) },
          trainLoss: o.trainLoss ?? heldOutLoss - 0.1,
          heldOutLoss,
          skippedBatches: o.skippedBatches ?? 0,
          nonFinite: o.nonFinite ?? false,
          stoppedEarly,
          seconds: ((endStep - startStep) * s.msPerStep) / 1000,
          tokensPerSec: 1000,
          lr: 3e-3 * input.lrScale,
          backend: 'sim',
          metricsKey: `${key}/metrics.jsonl`,
        };
        s.states.set(key, result);
        s.trains.push({
          segment: input.segment,
          attempt,
          fromStep: startStep,
          fromKey: input.from?.key ?? null,
          untilStep: input.untilStep,
          plannedSteps: input.plannedSteps,
          stopAt: input.stopAt,
          lrScale: input.lrScale,
          startMs: t0,
          // When the simulated trainer stopped. Not now(): while an activity holds the time-skipping
          // lock the server's clock runs in real time, so now() is later by however long this host
          // took between sleeps, which on a busy host can carry a segment past its stopAt.
          endMs: t0 + (endStep - startStep) * s.msPerStep,
          result,
        });
        return result;
      });
    },

    async lrFind(_input: LrFindRequest): Promise<LrFindReport> {
      return run('lrFind', async () => ({
        suggestedLr: 3e-3,
        chosenLr: 3e-3,
        steepestLr: 3e-3,
        minLossLr: 1e-2,
        diverged: false,
        steps: 100,
        seconds: 100,
        curve: [],
        curveKey: 'runs/sim/lr-find.jsonl',
      }));
    },

    /** Publishes the given state; the ledger keeps which state (and so which step) was published. */
    async checkpoint(input: CheckpointActivityInput): Promise<CheckpointRef> {
      return run('checkpoint', async (s) => {
        const seg = s.states.get(input.state.key);
        const hash = hashOfState(input.state.key);
        const ref: CheckpointRef = {
          hash,
          key: `checkpoints/${hash}`,
          location: `sim://${hash.slice(0, 16)}`,
          heldOutLoss: seg?.heldOutLoss ?? NaN,
          heldOutBitsPerByte: 1,
          tokenizer: 'bytes',
          vocabSize: 256,
          baselineLoss: defaultHeldOutLoss(0),
          trainLoss: input.trainLoss,
          steps: input.state.step,
          round: input.round,
          weights: 'raw',
          rawHeldOutLoss: seg?.heldOutLoss ?? NaN,
        };
        s.checkpoints.push({ atMs: await now(), state: input.state, round: input.round, ref });
        return ref;
      });
    },
  };

  return { control, gpu };
}
