// Where the job side names data preparation (prepare.ts): the trainingJob's prepare activity gets
// the train request; prepareJobData downloads the dataset, maps its columns by dataset_type, formats
// SFT / preference examples, splits a held-out set and writes .jsonl files to the store.
import type { DatasetRef } from '../../common/types';
import type { Settings } from '../../infra/settings';
import type { CheckpointStore } from '../../infra/store/store';
import { fetchOptionsFrom } from './dataset';
import { prepareJobData } from './prepare';
import type { TaskType, TrainRequestText } from './protocol';

export interface PrepareJobDataArgs {
  request: TrainRequestText;
  taskType: TaskType;
  store: CheckpointStore;
  workDir: string;
}

export type PrepareJobData = (args: PrepareJobDataArgs) => Promise<DatasetRef>;

/** prepareJobData with this worker's allowed data roots, download folder and S3 client. */
export function prepareWith(settings: Pick<Settings, 'dataDir' | 'dataRoots' | 's3'>): PrepareJobData {
  return ({ request, taskType, store }) =>
    prepareJobData(
      {
        taskId: request.task_id,
        taskType,
        dataset: request.dataset,
        datasetType: request.dataset_type,
        fileFormat: request.file_format,
      },
      { store, fetch: fetchOptionsFrom(settings) },
    );
}
