// The shared training loop every subnet's workflow calls: an optional LR range test, then training
// segments on the gpu queue until the policy (policy.ts) says stop or the deadline comes, with
// pause / resume / stop / extend from people and backtracking to the best state. It returns with
// the best state in `state.best`; what to do with it (commit on chain, submit a job) is the subnet's.
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineSignal,
  defineUpdate,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import type { GpuActivities } from '../activities';
import type { TrainingLoopInput } from '../common/config';
import { TASK_QUEUES } from '../common/queues';
import type { DatasetRef, LrFindReport, Telemetry } from '../common/types';
import { decide, extensionProblem, msPerStep, stepsFittingDeadline } from './policy';
import type { TrainingState } from './training-state';

// --- Messages (the same names on every subnet's workflow) ----------------------------------------
export interface ExtendRequest {
  steps?: number;
  seconds?: number;
}
/** Pause after the running segment; training resumes from the saved state. */
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
/** Finish training now and use the best checkpoint so far. */
export const stopTrainingSignal = defineSignal('stopTraining');
/** Add steps (or seconds' worth of steps); rejected if training would then miss its deadline. */
export const extendTrainingUpdate = defineUpdate<{ plannedSteps: number }, [ExtendRequest]>('extendTraining');

const TRAINING_PHASES = new Set(['validating', 'curate', 'lrFind', 'train', 'paused']);

/** Wires the training messages to `state`; `show` refreshes the UI's current details. */
export function handleTrainingMessages(state: TrainingState, show: () => void): void {
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
    state.event('stop requested: finishing training with the best checkpoint');
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
        if (!TRAINING_PHASES.has(state.phase))
          throw new Error(`extendTraining: training is over (phase ${state.phase})`);
        if (state.fitToDeadline && state.trainingDeadline !== undefined)
          throw new Error(
            'extendTraining rejected: training.fitToDeadline is on, so the planned steps already fill the time until the deadline',
          );
        const problem = extensionProblem(
          stepsFor(req, state),
          {
            segments: state.segments,
            plannedSteps: state.plannedSteps,
            now: Date.now(),
            deadline: state.trainingDeadline,
          },
          state.stepsDone,
        );
        if (problem) throw new Error(`extendTraining rejected: ${problem}`);
      },
    },
  );
}

export interface TrainingLoopOptions {
  runId: string;
  dataset: DatasetRef;
  show: () => void;
  /** Who the training is for: passed to the gpu worker to label its metrics. */
  labels?: Telemetry['labels'];
  /** Re-derives `state.trainingDeadline` before each segment after the first (from the chain's blocks, not a wall clock computed once). */
  replanDeadline?: () => Promise<void>;
  /** Where trainer segments run: a Gradients job trains on its pool's queue (common/queues.ts poolQueue). */
  taskQueue?: string;
}

/**
 * Trains until the policy finishes (state.best then holds the state to publish). The LR range test
 * runs first on a fresh model when enabled: a warm start already has weights and moments tuned to
 * the LR it was trained with.
 */
export async function runTrainingLoop(
  input: TrainingLoopInput,
  state: TrainingState,
  opts: TrainingLoopOptions,
): Promise<void> {
  state.learningRate = input.training.learningRate;
  state.fitToDeadline = input.training.fitToDeadline;
  if (input.training.lrFind.enabled && (!input.training.initFrom || input.training.finetune)) {
    const found = await findLearningRate(input, state, opts);
    if (found) state.learningRate = found.chosenLr;
  }
  await trainSegments({ ...input, training: { ...input.training, learningRate: state.learningRate } }, state, opts);
}

/** The LR range test (gpu queue); an inconclusive one keeps training.learningRate, and says so. */
async function findLearningRate(
  input: TrainingLoopInput,
  state: TrainingState,
  opts: TrainingLoopOptions,
): Promise<LrFindReport | undefined> {
  const { lrFind } = proxyActivities<GpuActivities>({
    taskQueue: opts.taskQueue ?? TASK_QUEUES.gpu,
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: `${input.training.heartbeatTimeoutSeconds}s`,
    retry: { initialInterval: '1s', maximumAttempts: 5 },
  });
  const f = input.training.lrFind;
  state.enter(
    'lrFind',
    `LR range test: ${f.steps} steps, LR ${f.minLr} → ${f.maxLr}, suggestion clamped to [${f.floor}, ${f.ceiling}]`,
  );
  opts.show();
  try {
    const found = (state.lrFind = await stage(
      'lrFind',
      lrFind({
        runId: opts.runId,
        dataset: opts.dataset,
        trainer: input.trainer,
        model: input.model,
        training: input.training,
        stopAt: state.trainingDeadline,
      }),
    ));
    state.event(
      `LR range test: suggested ${found.suggestedLr.toExponential(2)} (steepest ${found.steepestLr.toExponential(2)}, lowest loss ${found.minLossLr.toExponential(2)}), training at ${found.chosenLr.toExponential(2)}`,
    );
    opts.show();
    return found;
  } catch (err) {
    if (!(err instanceof ApplicationFailure && err.type === 'LrFindInconclusiveError')) throw err;
    state.event(
      `LR range test inconclusive (${err.message}); training at the configured ${input.training.learningRate}`,
    );
    opts.show();
    return undefined;
  }
}

/** Segments until the policy says stop; pauses wait between segments. */
async function trainSegments(input: TrainingLoopInput, state: TrainingState, opts: TrainingLoopOptions): Promise<void> {
  // Training heartbeats every few seconds: a dead gpu worker is noticed within the heartbeat
  // timeout and its segment moves to another worker, from the same saved state.
  const queue = opts.taskQueue ?? TASK_QUEUES.gpu;
  const { trainSegment } = proxyActivities<GpuActivities>({
    taskQueue: queue,
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: `${input.training.heartbeatTimeoutSeconds}s`,
    retry: { initialInterval: '1s', maximumAttempts: 5 },
  });
  const until = state.trainingDeadline ? `, until ${new Date(state.trainingDeadline).toISOString()}` : '';
  state.enter(
    'train',
    `training ${state.plannedSteps} steps in segments of ${input.training.segmentSteps} on ${queue}${until}`,
  );
  opts.show();
  const measured = { stepsTrained: 0, wallMs: 0 }; // for training.fitToDeadline
  const fit = () => {
    if (!input.training.fitToDeadline || state.trainingDeadline === undefined || measured.stepsTrained === 0) return;
    const planned = stepsFittingDeadline({
      ...measured,
      stepsDone: state.stepsDone,
      now: Date.now(),
      deadline: state.trainingDeadline,
      limit: input.training.steps + state.extraStepsTaken,
    });
    if (planned === state.plannedSteps) return;
    state.event(
      `planned steps ${state.plannedSteps} → ${planned}: what fits before the deadline at ${(measured.wallMs / measured.stepsTrained).toFixed(0)} ms/step (training.fitToDeadline)`,
    );
    state.plannedSteps = planned;
  };
  for (let segment = 1; ; segment++) {
    if (state.paused && !state.stopRequested) {
      state.enter('paused', `paused at step ${state.stepsDone}`);
      opts.show();
      await condition(() => !state.paused || state.stopRequested);
      state.enter('train', `resumed at step ${state.stepsDone}`);
      opts.show();
    }
    if (state.stopRequested && state.best) {
      state.apply({ afterSegment: segment - 1, action: 'finish', reason: 'stop requested by the operator' });
      return;
    }
    if (segment > 1 && opts.replanDeadline) await opts.replanDeadline();
    fit();
    const spike = input.training.drill.lrSpikeSegment === segment ? input.training.drill.lrSpikeFactor : 1;
    if (spike !== 1) state.event(`DRILL: LR × ${spike} in segment ${segment}`);
    const startedAt = Date.now();
    const result = await stage(
      'train',
      trainSegment({
        runId: opts.runId,
        segment,
        dataset: opts.dataset,
        trainer: input.trainer,
        model: input.model,
        training: input.training,
        eval: input.eval,
        plannedSteps: state.plannedSteps,
        from: state.resumeFrom(),
        untilStep: Math.min(state.stepsDone + input.training.segmentSteps, state.plannedSteps),
        lrScale: state.lrScale * spike,
        stopAt: state.trainingDeadline,
        telemetry: opts.labels && { labels: opts.labels, backtrack: state.decisions.at(-1)?.action === 'backtrack' },
      }),
    );
    measured.wallMs += Date.now() - startedAt;
    measured.stepsTrained += Math.max(0, result.endStep - result.startStep);
    state.addSegment(result);
    fit();
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
    opts.show();
    if (decision.action === 'finish' || decision.action === 'earlyStop') return;
  }
}

function stepsFor(req: ExtendRequest, state: TrainingState): number {
  if (req.steps !== undefined) return req.steps;
  if (req.seconds !== undefined) {
    const perStep = msPerStep(state.segments);
    if (perStep === undefined)
      throw new Error('extendTraining: no training speed measured yet; extend by steps, or wait for the first segment');
    return Math.floor((req.seconds * 1000) / perStep);
  }
  throw new Error('extendTraining needs {steps} or {seconds}');
}

/** Awaits an activity; a permanent failure becomes the workflow's failure, named by stage, type and message. */
export async function stage<T>(name: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
      throw ApplicationFailure.create({
        message: `${name} failed: ${err.cause.message}`,
        type: err.cause.type ?? undefined,
        nonRetryable: true,
        cause: err,
      });
    }
    throw err;
  }
}
