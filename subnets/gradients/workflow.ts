// Gradients' workflows. `poolScheduler` (one per GPU pool, id gradients-pool-<pool>) hands the pool's
// slots to the jobs that ask, earliest deadline first (slots.ts). `trainingJob` (one per task, id
// gradients-job-<task_id>) prepares the data and fetches the base model while other jobs train,
// waits for a slot, trains with the shared loop on the pool's queue until deadline − reserve,
// publishes the best state to the validator's repo and answers `submission`. Deterministic
// orchestration only; every stage is an activity.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import { parseOrExplain, InvalidInputError } from '../../common/config';
import { poolQueue, TASK_QUEUES } from '../../common/queues';
import { FLEET_ATTRIBUTES } from '../../common/search-attributes';
import type { DatasetRef, SegmentResult } from '../../common/types';
import { fleetSearchAttributes } from '../../workflows/fleet';
import { handleTrainingMessages, runTrainingLoop, stage } from '../../workflows/training-loop';
import { fmt, TrainingState } from '../../workflows/training-state';
import type { GradientsControlActivities, GradientsGpuActivities } from './activities';
import {
  finetuneFor,
  jobWorkflowId,
  poolWorkflowId,
  TrainingJobInputSchema,
  type BaseModel,
  type JobConfig,
  type JobOutcomeEvent,
  type TrainingJobInput,
  type TrainingJobResult,
  type TrainingJobStatus,
} from './job';
import type { PoolLoad } from './ports';
import type { MinerSubmission } from './protocol';
import { enqueue, grant, loadOf, release, type PoolSlots, type SlotRequest } from './slots';

// --- Messages -------------------------------------------------------------------------------------
export const requestSlotSignal = defineSignal<[SlotRequest]>('requestSlot');
export const releaseSlotSignal = defineSignal<[{ taskId: string }]>('releaseSlot');
export const slotGrantedSignal = defineSignal<[{ pool: string }]>('slotGranted');
/** The scheduler asks a slot holder whether it still lives: the signal fails once the job has closed. */
export const slotCheckSignal = defineSignal('slotCheck');
export const poolLoadQuery = defineQuery<PoolLoad>('load');
export const submissionQuery = defineQuery<MinerSubmission | null>('submission');
export const jobStatusQuery = defineQuery<TrainingJobStatus>('jobStatus');

// --- The pool scheduler ---------------------------------------------------------------------------
export interface PoolSchedulerInput {
  pool: string;
  slots: number;
  state?: PoolSlots; // carried over by continueAsNew
  maxHistory?: number; // history events before continuing as new (tests make it small)
}

/** How often the scheduler checks that its slot holders still live (a terminated job runs no `finally`). */
const LIVENESS_CHECK_MS = 60_000;
/** History events after which the scheduler continues as new, carrying its queue. */
const MAX_HISTORY = 2_000;

export async function poolScheduler(input: PoolSchedulerInput): Promise<void> {
  let s: PoolSlots = input.state
    ? { ...input.state, slots: input.slots }
    : { pool: input.pool, slots: input.slots, running: [], queued: [] };
  let changed = true;
  setHandler(requestSlotSignal, (req) => {
    s = enqueue(s, req);
    changed = true;
  });
  setHandler(releaseSlotSignal, ({ taskId }) => {
    s = release(s, taskId);
    changed = true;
  });
  setHandler(poolLoadQuery, () => loadOf(s));

  for (;;) {
    // With slots held, wake now and then to check their holders; idle, wait for a signal.
    const woke =
      s.running.length > 0 ? await condition(() => changed, LIVENESS_CHECK_MS) : (await condition(() => changed), true);
    if (woke) {
      changed = false;
      const g = grant(s, Date.now());
      s = g.state;
      for (const taskId of g.granted) {
        try {
          await getExternalWorkflowHandle(jobWorkflowId(taskId)).signal(slotGrantedSignal, { pool: s.pool });
        } catch {
          s = release(s, taskId); // the job is gone (finished, failed or terminated while queued)
          changed = true;
        }
      }
    } else {
      for (const job of s.running) {
        try {
          await getExternalWorkflowHandle(jobWorkflowId(job.taskId)).signal(slotCheckSignal);
        } catch {
          s = release(s, job.taskId); // it closed without releasing (terminated): free its slot
          changed = true;
        }
      }
    }
    setCurrentDetails(
      `**pool ${s.pool}:** ${s.running.length}/${s.slots} slots busy (${s.running.map((j) => j.taskId).join(', ') || '-'}); queued: ${s.queued.map((j) => j.taskId).join(', ') || '-'}`,
    );
    if (
      !changed &&
      (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (input.maxHistory ?? MAX_HISTORY))
    ) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof poolScheduler>({ ...input, slots: s.slots, state: s });
    }
  }
}

// --- The training job -----------------------------------------------------------------------------
const { prepareGradientsData, fetchBaseModel, requestPoolSlot, recordJobOutcome } =
  proxyActivities<GradientsControlActivities>({
    taskQueue: TASK_QUEUES.control,
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '2s', maximumInterval: '30s', maximumAttempts: 5 },
  });

class JobState extends TrainingState {
  slotGrantedAt: number | null = null;
  submission: MinerSubmission | null = null;
}

export async function trainingJob(rawInput: TrainingJobInput): Promise<TrainingJobResult> {
  const input = validate(rawInput);
  const { request, config } = input;
  const taskId = request.task_id;
  const deadline = input.receivedAt + request.hours_to_complete * 3_600_000;
  const trainingDeadline = deadline - config.reserveSeconds * 1000;
  const pool = choosePool(input.decision.pool, config);
  const state = new JobState(config.training.steps);
  state.trainingDeadline = trainingDeadline;
  let granted = false;

  const fleet = fleetSearchAttributes(true, { subnet: 'gradients', hotkey: config.hotkey });
  upsertSearchAttributes([
    { key: FLEET_ATTRIBUTES.job, value: taskId },
    { key: FLEET_ATTRIBUTES.pool, value: pool.name },
  ]);
  const show = () => {
    setCurrentDetails(
      [
        `**job:** ${taskId} (${input.taskType}, ${request.model}) on pool ${pool.name}`,
        `**deadline:** ${new Date(deadline).toISOString()}`,
        ...state.trainingDetails(),
      ].join('\n'),
    );
    fleet.update({ phase: state.phase });
  };
  setHandler(slotGrantedSignal, () => {
    granted = true;
  });
  setHandler(slotCheckSignal, () => undefined);
  setHandler(submissionQuery, () => state.submission);
  setHandler(jobStatusQuery, () => ({
    taskId,
    pool: pool.name,
    phase: state.phase,
    deadline,
    trainingDeadline,
    slotGrantedAt: state.slotGrantedAt,
    steps: state.best?.endStep ?? 0,
    bestHeldOutLoss: state.best?.heldOutLoss ?? null,
    submission: state.submission,
    events: state.events,
  }));
  handleTrainingMessages(state, show);

  const queue = poolQueue(pool.name);
  const { publishSubmission } = proxyActivities<GradientsGpuActivities>({
    taskQueue: queue,
    // Never past the deadline: a submission after it is worth nothing.
    startToCloseTimeout: Math.max(1000, deadline - Date.now()),
    heartbeatTimeout: `${config.training.heartbeatTimeoutSeconds}s`,
    retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 10 },
  });

  let dataset: DatasetRef | null = null;
  let base: BaseModel | undefined;
  let asked = false;
  let failure: unknown;
  try {
    state.enter(
      'prepare',
      `preparing ${request.dataset} and fetching ${request.model}; deadline ${new Date(deadline).toISOString()}`,
    );
    show();
    // Both run on the control queue, while the pool's slots train other jobs.
    [dataset, base] = await Promise.all([
      stage('prepare', prepareGradientsData({ request, taskType: input.taskType })),
      stage('baseModel', fetchBaseModel({ repo: request.model })),
    ]);
    state.event(
      `data: ${dataset.trainDocuments} training and ${dataset.heldOutDocuments} held-out examples (${dataset.kind ?? 'text'}); base model ${base.repo}@${base.commitSha.slice(0, 7)}, ${base.parameters} parameters`,
    );

    state.enter('waitSlot', `waiting for a slot on pool ${pool.name}`);
    show();
    asked = true;
    await stage(
      'waitSlot',
      requestPoolSlot({
        pool: pool.name,
        slots: pool.slots,
        request: { taskId, deadline, estimatedSeconds: input.decision.estimatedSeconds ?? 0 },
      }),
    );
    if (await condition(() => granted, Math.max(0, trainingDeadline - Date.now()))) {
      state.slotGrantedAt = Date.now();
      state.event(`slot granted on pool ${pool.name}`);
      const finetune = finetuneFor(dataset.kind, input.decision.method);
      await runTrainingLoop(
        {
          trainer: config.trainer,
          model: { ...base.model, seed: 0, backend: 'auto', moe: null },
          training: {
            ...config.training,
            initFrom: base.initFrom,
            ...(finetune ? { finetune } : {}),
          },
          policy: config.policy,
          eval: config.eval,
        },
        state,
        { runId: workflowInfo().workflowId, dataset, show, labels: fleet.labels, taskQueue: queue },
      );
    } else {
      state.event(`no slot on pool ${pool.name} before ${new Date(trainingDeadline).toISOString()}`);
    }
  } catch (err) {
    failure = err;
    state.event(`training stopped: ${err instanceof Error ? err.message : String(err)}`);
  }

  // Whatever happened, submit what there is before the deadline: the best state, else the base model
  // (an accepted job with nothing submitted is penalised); only a job without data or base fails.
  let outcome: JobOutcomeEvent = 'failed';
  let reason = failure instanceof Error ? failure.message : 'no state to submit';
  let heldOutLoss: number | null = null;
  try {
    if (dataset && base && Date.now() < deadline) {
      const best: SegmentResult | undefined = state.best;
      state.enter(
        'publish',
        best
          ? `publishing step ${best.endStep} (held-out ${fmt(best.heldOutLoss)}) to ${config.hubNamespace}/${request.expected_repo_name || taskId}`
          : `publishing the base model unchanged to ${config.hubNamespace}/${request.expected_repo_name || taskId}: no trained state`,
      );
      show();
      const published = await CancellationScope.nonCancellable(() =>
        stage(
          'publish',
          publishSubmission({
            runId: workflowInfo().workflowId,
            taskId,
            repo: `${config.hubNamespace}/${request.expected_repo_name || taskId}`,
            dataset: dataset!,
            trainer: config.trainer,
            model: { ...base!.model, seed: 0, backend: 'auto', moe: null },
            eval: config.eval,
            state: best?.state ?? null,
            baseKey: base!.initFrom,
            trainLoss: best?.trainLoss ?? null,
          }),
        ),
      );
      state.submission = published.submission;
      heldOutLoss = published.heldOutLoss;
      const late = Date.now() > deadline;
      // A job whose training broke still delivers, but the record counts it as failed.
      outcome = late ? 'late' : failure ? 'failed' : 'finished';
      reason = failure
        ? `submitted ${best ? 'the best state' : 'the base model'} after training stopped: ${reason}`
        : best
          ? `submitted step ${best.endStep}`
          : 'submitted the base model: no slot in time';
      state.enter('done', `${outcome}: ${published.submission.repo} model_hash ${published.submission.model_hash}`);
    } else {
      state.enter('failed', `nothing submitted: ${reason}`);
    }
  } catch (err) {
    reason = `publish failed: ${err instanceof Error ? err.message : String(err)}`;
    state.enter('failed', reason);
  } finally {
    if (asked) await releaseSlot(pool.name, taskId);
    show();
  }

  await CancellationScope.nonCancellable(() =>
    recordJobOutcome({
      taskId,
      taskType: input.taskType,
      model: request.model,
      paramsCount: input.offer?.model_params_count ?? base?.parameters ?? null,
      event: outcome,
      finalLoss: heldOutLoss ?? undefined,
      seconds: state.slotGrantedAt ? Math.round((Date.now() - state.slotGrantedAt) / 1000) : undefined,
      tokensPerSec: state.segments.at(-1)?.tokensPerSec,
    }),
  ).catch(() => undefined); // the record is advisory: losing one outcome must not fail a delivered job

  if (!state.submission) throw ApplicationFailure.nonRetryable(`job ${taskId}: ${reason}`, 'JobFailedError', undefined);
  return {
    taskId,
    pool: pool.name,
    outcome,
    reason,
    submission: state.submission,
    deadline,
    submittedAt: state.submission ? Date.now() : null,
    heldOutLoss,
    steps: state.best?.endStep ?? 0,
    dataset,
  };
}

/** Tells the pool the slot (or the place in its queue) is free; a gone scheduler has nothing to free. */
async function releaseSlot(pool: string, taskId: string): Promise<void> {
  await CancellationScope.nonCancellable(() =>
    getExternalWorkflowHandle(poolWorkflowId(pool)).signal(releaseSlotSignal, { taskId }),
  ).catch(() => undefined);
}

function choosePool(name: string | null, config: JobConfig) {
  const pool = config.pools.find((p) => p.name === name);
  if (!pool)
    throw ApplicationFailure.nonRetryable(
      `decision.pool = ${JSON.stringify(name)}: not one of the configured pools (${config.pools.map((p) => p.name).join(', ')})`,
      'InvalidInputError',
    );
  return pool;
}

function validate(raw: TrainingJobInput) {
  try {
    return parseOrExplain(TrainingJobInputSchema, raw, 'trainingJob input');
  } catch (err) {
    if (err instanceof InvalidInputError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInputError');
    throw err;
  }
}
