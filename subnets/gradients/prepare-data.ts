// Where a job's dataset is prepared: wt-data's prepareJobData (subnets/gradients/prepare.ts) downloads
// the dataset, maps its columns by dataset_type, formats SFT / preference examples, splits a held-out
// set and writes .jsonl files to the store. This file is the one place the job side names it.
import type { DatasetRef } from '../../common/types';
import type { CheckpointStore } from '../../infra/store/store';
import type { TaskType, TrainRequestText } from './protocol';

export interface PrepareJobDataArgs {
  request: TrainRequestText;
  taskType: TaskType;
  store: CheckpointStore;
  workDir: string;
}

export type PrepareJobData = (args: PrepareJobDataArgs) => Promise<DatasetRef>;

/** Until prepare.ts is on this branch: says so (non-retryably) instead of training on nothing. */
export class DataPreparationUnavailableError extends Error {
  override name = 'DataPreparationUnavailableError';
}

export const prepareJobData: PrepareJobData = () =>
  Promise.reject(
    new DataPreparationUnavailableError(
      'Gradients data preparation (subnets/gradients/prepare.ts prepareJobData) is not part of this build',
    ),
  );
