// The mining cycle: curate → train (in segments) → checkpoint → commit (two phases) → await score.
// Deterministic orchestration only. Every stage is an activity with its own timeout and retries;
// decisions between segments come from the pure policy (policy.ts); the state lives in CycleState.
// People steer it with the messages below (CLI: `minerflow cycle pause|resume|stop|extend|status`).
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities, GpuActivities } from '../activities';
import { CycleInputSchema, InvalidInputError, parseOrExplain, type CycleInput } from '../common/config';
import { TASK_QUEUES } from '../common/queues';
import type { CommitPlan, CycleResult, CycleStatus, DatasetRef, LrFindReport } from '../common/types';
import { CycleState, fmt } from './cycle-state';
import { decide, extensionProblem, msPerStep } from './policy';

// --- Messages -----------------------------------------------------------------------------------
export interface ExtendRequest {
  steps?: number;
  seconds?: number;
}
export const statusQuery = defineQuery<CycleStatus>('status');
/** Pause after the running segment; training resumes from the saved state. */
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
/** Finish training now and commit the best checkpoint so far. */
export const stopTrainingSignal = defineSignal('stopTraining');
/** Add steps (or seconds' worth of steps); rejected if training would then miss commit 1. */
export const extendTrainingUpdate = defineUpdate<{ plannedSteps: number }, [ExtendRequest]>('extendTraining');

// --- Activities ---------------------------------------------------------------------------------
const { curateCorpus } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '2s', maximumAttempts: 5 },
});
const { planCommit } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 10 },
});
// Commits retry fast: a window is minutes long; the activity fails for good once it has closed.
const { commitSignature, commitLocation } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '60s',
  retry: { initialInterval: '500ms', backoffCoefficient: 1.5, maximumInterval: '5s', maximumAttempts: 30 },
});
const { awaitScore } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '7 days',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5s', maximumAttempts: 10 },
});
const { checkpoint } = proxyActivities<GpuActivities>({
  taskQueue: TASK_QUEUES.gpu,
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '5 minutes',
  retry: { initialInterval: '5s', maximumAttempts: 5 },
});

export async function miningCycle(rawInput: unknown): Promise<CycleResult> {
  const input = validate(rawInput);
  const state = new CycleState(input.training.steps);
  const show = () => setCurrentDetails(state.details());
  setHandler(statusQuery, () => state.status());
  setHandler(pauseSignal, () => {
    state.paused = true;
    state.event('pause requested');
    show();
  });
  setHandler(resumeSignal, () => {
    state.paused = false;
    state.event('resume requested');
    show();
  });
  setHandler(stopTrainingSignal, () => {
    state.stopRequested = true;
    state.event('stop requested: finishing training and committing the best checkpoint');
    show();
  });
  setHandler(
    extendTrainingUpdate,
    (req) => {
      const steps = stepsFor(req, state);
      state.plannedSteps += steps;
      state.event(`extended by ${steps} steps to ${state.plannedSteps}`);
      show();
      return { plannedSteps: state.plannedSteps };
    },
    {
      validator: (req) => {
        if (state.phase !== 'train' && state.phase !== 'paused' && state.phase !== 'curate' && state.phase !== 'lrFind') {
          throw new Error(`extendTraining: training is over (phase ${state.phase})`);
        }
        const problem = extensionProblem(stepsFor(req, state), { segments: state.segments, plannedSteps: state.plannedSteps, now: Date.now(), deadline: state.trainingDeadline }, state.stepsDone);
        if (problem) throw new Error(`extendTraining rejected: ${problem}`);
      },
    },
  );

  const runId = workflowInfo().workflowId;
  try {
    state.enter('curate', `curating ${input.corpus.path}`);
    show();
    const dataset = (state.dataset = await stage('curate', curateCorpus({ corpus: input.corpus, curate: input.curate })));

    // Train for the first round whose commit 1 leaves time to train, and stop in time for it.
    state.plan = await stage('commit', planCommit({ minLeadMs: (input.commit.minTrainSeconds + input.commit.reserveSeconds) * 1000 }));
    state.trainingDeadline = state.plan.commit1.opensAt - input.commit.reserveSeconds * 1000;
    state.learningRate = input.training.learningRate;
    // The LR range test spends steps of the training window, once, on a fresh model only: a warm
    // start already has weights and moments tuned to the LR it was trained with.
    if (input.training.lrFind.enabled && !input.training.initFrom) {
      const found = await findLearningRate(input, dataset, state, runId, show);
      if (found) state.learningRate = found.chosenLr;
    }
    await train({ ...input, training: { ...input.training, learningRate: state.learningRate } }, dataset, state, runId, show);
    const best = state.best;
    if (!best) throw ApplicationFailure.nonRetryable(`no training segment produced a finite held-out loss (${state.segments.length} segments); nothing to commit`, 'NothingToCommit');

    state.enter('checkpoint', `publishing the best state: step ${best.endStep}, held-out ${fmt(best.heldOutLoss)}`);
    show();
    const ckpt = (state.checkpoint = await stage(
      'checkpoint',
      checkpoint({ runId, dataset, state: best.state, trainLoss: best.trainLoss, backend: best.backend, round: state.plan.round, model: input.model, eval: input.eval }),
    ));

    const plan = await commitTwoPhase(input, state, show);
    if (plan) {
      state.enter('awaitScore', `waiting for the validators' score of round ${plan.round}`);
      show();
      state.score = await stage('awaitScore', awaitScore({ miner: input.miner, round: plan.round, validateStartBlock: plan.validateStartBlock, ...input.score }));
    } else {
      state.score = { status: 'missed', round: state.plan.round, hotkey: '', reason: state.missedWindows.join('; ') };
    }
    state.enter('done', `score: ${state.score.status}${state.score.incentiveShare !== undefined ? `, incentive share ${state.score.incentiveShare}` : ''}`);
    show();
    const last = state.segments.at(-1)!;
    return {
      workflowId: runId,
      hotkey: state.score.hotkey,
      dataset,
      training: {
        steps: best.endStep,
        stepsRun: state.stepsRun(),
        plannedSteps: state.plannedSteps,
        segments: state.segments.length,
        trainLoss: best.trainLoss,
        heldOutLoss: best.heldOutLoss,
        tokensPerSec: last.tokensPerSec,
        backend: last.backend,
        best: best.state,
        learningRate: state.learningRate,
        lrFind: state.lrFind,
      },
      segments: state.segments,
      decisions: state.decisions,
      checkpoint: ckpt,
      commits: state.commits,
      missedWindows: state.missedWindows,
      score: state.score,
    };
  } catch (err) {
    state.enter('failed', err instanceof Error ? err.message : String(err));
    show();
    throw err;
  }
}

/** The LR range test (gpu queue); an inconclusive one keeps training.learningRate, and says so. */
async function findLearningRate(input: CycleInput, dataset: DatasetRef, state: CycleState, runId: string, show: () => void): Promise<LrFindReport | undefined> {
  const { lrFind } = proxyActivities<GpuActivities>({
    taskQueue: TASK_QUEUES.gpu,
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: `${input.training.heartbeatTimeoutSeconds}s`,
    retry: { initialInterval: '1s', maximumAttempts: 5 },
  });
  const f = input.training.lrFind;
  state.enter('lrFind', `LR range test: ${f.steps} steps, LR ${f.minLr} → ${f.maxLr}, suggestion clamped to [${f.floor}, ${f.ceiling}]`);
  show();
  try {
    const found = (state.lrFind = await stage('lrFind', lrFind({ runId, dataset, model: input.model, training: input.training, stopAt: state.trainingDeadline })));
    state.event(`LR range test: suggested ${found.suggestedLr.toExponential(2)} (steepest ${found.steepestLr.toExponential(2)}, lowest loss ${found.minLossLr.toExponential(2)}), training at ${found.chosenLr.toExponential(2)}`);
    show();
    return found;
  } catch (err) {
    if (!(err instanceof ApplicationFailure && err.type === 'LrFindInconclusiveError')) throw err;
    state.event(`LR range test inconclusive (${err.message}); training at the configured ${input.training.learningRate}`);
    show();
    return undefined;
  }
}

/** Segments until the policy says stop; pauses wait between segments. */
async function train(input: CycleInput, dataset: DatasetRef, state: CycleState, runId: string, show: () => void): Promise<void> {
  // Training heartbeats every few seconds: a dead gpu worker is noticed within the heartbeat
  // timeout and its segment moves to another worker, from the same saved state.
  const { trainSegment } = proxyActivities<GpuActivities>({
    taskQueue: TASK_QUEUES.gpu,
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: `${input.training.heartbeatTimeoutSeconds}s`,
    retry: { initialInterval: '1s', maximumAttempts: 5 },
  });
  state.enter('train', `training ${state.plannedSteps} steps in segments of ${input.training.segmentSteps} on ${TASK_QUEUES.gpu}, until ${new Date(state.trainingDeadline!).toISOString()}`);
  show();
  for (let segment = 1; ; segment++) {
    if (state.paused && !state.stopRequested) {
      state.enter('paused', `paused at step ${state.stepsDone}`);
      show();
      await condition(() => !state.paused || state.stopRequested);
      state.enter('train', `resumed at step ${state.stepsDone}`);
      show();
    }
    if (state.stopRequested && state.best) {
      state.apply({ afterSegment: segment - 1, action: 'finish', reason: 'stop requested by the operator' });
      return;
    }
    const spike = input.training.drill.lrSpikeSegment === segment ? input.training.drill.lrSpikeFactor : 1;
    if (spike !== 1) state.event(`DRILL: LR × ${spike} in segment ${segment}`);
    const result = await stage(
      'train',
      trainSegment({
        runId,
        segment,
        dataset,
        model: input.model,
        training: input.training,
        eval: input.eval,
        plannedSteps: state.plannedSteps,
        from: state.resumeFrom(),
        untilStep: Math.min(state.stepsDone + input.training.segmentSteps, state.plannedSteps),
        lrScale: state.lrScale * spike,
        stopAt: state.trainingDeadline,
      }),
    );
    state.addSegment(result);
    const decision = decide(input.policy, {
      segments: state.segments,
      best: state.best,
      plannedSteps: state.plannedSteps,
      extraStepsTaken: state.extraStepsTaken,
      backtracks: state.backtracks,
      lrScale: state.lrScale,
      stopRequested: state.stopRequested,
      segmentSteps: input.training.segmentSteps,
      now: Date.now(),
      deadline: state.trainingDeadline,
    });
    state.apply(decision);
    show();
    if (decision.action === 'finish' || decision.action === 'earlyStop') return;
  }
}

/**
 * Commit 1 inside MinerCommit1, commit 2 after it and before MinerCommit2 ends. A missed window is
 * recorded loudly and the commit moves to the next round, as long as the checkpoint is not older
 * than commit.maxRounds allows; returns the round's plan, or undefined if every try missed.
 */
async function commitTwoPhase(input: CycleInput, state: CycleState, show: () => void): Promise<CommitPlan | undefined> {
  const ckpt = state.checkpoint!;
  for (;;) {
    const plan = (state.plan = await stage('commit', planCommit({})));
    if (plan.round - ckpt.round >= input.commit.maxRounds) {
      state.event(`not committing: the checkpoint was trained for round ${ckpt.round} and round ${plan.round} is beyond commit.maxRounds (${input.commit.maxRounds})`);
      return undefined;
    }
    if (plan.round !== ckpt.round && !state.missedWindows.some((m) => m.includes(`round ${plan.round - 1}`))) {
      miss(state, `commit 1 window of round ${plan.round - 1} closed before the checkpoint was ready`);
    }
    state.commits = [];
    try {
      state.enter('commit1', `round ${plan.round}: commit 1 window opens in ${Math.max(0, plan.commit1.opensAt - Date.now())} ms`);
      show();
      await sleepUntil(plan.commit1.opensAt);
      state.commits.push(await stage('commit1', commitSignature({ miner: input.miner, hash: ckpt.hash, window: plan.commit1 })));
      state.enter('commit2', `round ${plan.round}: commit 2 window opens in ${Math.max(0, plan.commit2.opensAt - Date.now())} ms`);
      show();
      await sleepUntil(plan.commit2.opensAt);
      state.commits.push(await stage('commit2', commitLocation({ miner: input.miner, hash: ckpt.hash, location: ckpt.location, window: plan.commit2 })));
      return plan;
    } catch (err) {
      if (!(err instanceof ApplicationFailure && err.type === 'MissedWindowError')) throw err;
      miss(state, `round ${plan.round}: ${err.message}`);
      show();
      await sleepUntil(plan.commit2.closesAt); // the round is lost; plan the next one after it
    }
  }
}

function miss(state: CycleState, what: string): void {
  state.missedWindows.push(what);
  state.event(`MISSED COMMIT WINDOW: ${what}`);
}

function stepsFor(req: ExtendRequest, state: CycleState): number {
  if (req.steps !== undefined) return req.steps;
  if (req.seconds !== undefined) {
    const perStep = msPerStep(state.segments);
    if (perStep === undefined) throw new Error('extendTraining: no training speed measured yet; extend by steps, or wait for the first segment');
    return Math.floor((req.seconds * 1000) / perStep);
  }
  throw new Error('extendTraining needs {steps} or {seconds}');
}

function validate(raw: unknown): CycleInput {
  try {
    return parseOrExplain(CycleInputSchema, raw, 'miningCycle input');
  } catch (err) {
    if (err instanceof InvalidInputError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInputError');
    throw err;
  }
}

/** Awaits an activity; a permanent failure becomes the cycle's failure, named by stage, type and message. */
async function stage<T>(name: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
      throw ApplicationFailure.create({ message: `${name} failed: ${err.cause.message}`, type: err.cause.type ?? undefined, nonRetryable: true, cause: err });
    }
    throw err;
  }
}

async function sleepUntil(epochMs: number): Promise<void> {
  const ms = epochMs - Date.now();
  if (ms > 0) await sleep(ms);
}
