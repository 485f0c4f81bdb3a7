// Gradients' activities, thin: each wraps one adapter. Control queue: prepare the data, fetch the
// base model, ask the pool scheduler for a slot, record the outcome. Pool queue: publish.
import * as path from 'node:path';
import { Context, log } from '@temporalio/activity';
import type { TrainerInput } from '../../common/config';
import { TASK_QUEUES } from '../../common/queues';
import type { DatasetRef } from '../../common/types';
import { mapErrors } from '../../activities/errors';
import { withTrainerHooks } from '../../activities/train';
import type { ModelHub } from '../../infra/hub/hub';
import type { CheckpointStore } from '../../infra/store/store';
import type { Trainer } from '../../trainers/trainer';
import { fetchBaseModel } from './base-model';
import { poolWorkflowId, type BaseModel, type JobOutcomeEvent } from './job';
import type { JobRecord } from './ports';
import { jobKind } from './acceptance';
import type { PrepareJobData } from './prepare-data';
import type { TaskType, TrainRequestText } from './protocol';
import { publishSubmission, type PublishInput, type Published } from './publish';
import type { SlotRequest } from './slots';

export interface JobOutcomeInput {
  taskId: string;
  taskType: TaskType;
  model: string;
  paramsCount: number | null;
  event: JobOutcomeEvent;
  finalLoss?: number;
  seconds?: number;
  tokensPerSec?: number;
}

export interface GradientsControlDeps {
  workDir: string;
  store: CheckpointStore;
  hub: () => ModelHub;
  prepare: PrepareJobData;
  /** The record of past jobs; absent: outcomes are only logged. */
  record?: JobRecord;
}

export function makeGradientsControlActivities(deps: GradientsControlDeps) {
  return {
    async prepareGradientsData(input: { request: TrainRequestText; taskType: TaskType }): Promise<DatasetRef> {
      return mapErrors(() =>
        deps.prepare({ ...input, store: deps.store, workDir: path.join(deps.workDir, 'jobs', input.request.task_id) }),
      );
    },
    async fetchBaseModel(input: { repo: string }): Promise<BaseModel> {
      return mapErrors(() => fetchBaseModel(input.repo, { hub: deps.hub(), store: deps.store, workDir: deps.workDir }));
    },
    /** Asks pool `pool` for a slot, starting its scheduler if it is not running (signalWithStart). */
    async requestPoolSlot(input: { pool: string; slots: number; request: SlotRequest }): Promise<void> {
      await Context.current().client.workflow.signalWithStart('poolScheduler', {
        workflowId: poolWorkflowId(input.pool),
        taskQueue: TASK_QUEUES.control,
        args: [{ pool: input.pool, slots: input.slots }],
        signal: 'requestSlot',
        signalArgs: [input.request],
      });
    },
    async recordJobOutcome(input: JobOutcomeInput): Promise<void> {
      log.info('gradients job outcome', { ...input });
      if (!deps.record) return;
      const kind = jobKind({ model: input.model, model_params_count: input.paramsCount, task_type: input.taskType });
      await deps.record.add({
        ...kind,
        taskId: input.taskId,
        event: input.event,
        finalLoss: input.finalLoss,
        seconds: input.seconds,
        tokensPerSec: input.tokensPerSec,
      });
    },
  };
}

export interface GradientsGpuDeps {
  workDir: string;
  store: CheckpointStore;
  hub: () => ModelHub;
  trainerFor: (t: TrainerInput) => Trainer;
}

export function makeGradientsGpuActivities(deps: GradientsGpuDeps) {
  return {
    async publishSubmission(input: PublishInput): Promise<Published> {
      // The keep-alive covers the export's evaluation and the upload.
      return mapErrors(() =>
        withTrainerHooks((hooks) =>
          publishSubmission(input, {
            workDir: deps.workDir,
            store: deps.store,
            trainer: deps.trainerFor(input.trainer),
            hub: deps.hub(),
            hooks,
          }),
        ),
      );
    },
  };
}

export type GradientsControlActivities = ReturnType<typeof makeGradientsControlActivities>;
export type GradientsGpuActivities = ReturnType<typeof makeGradientsGpuActivities>;
