// Gradients (subnet 56): validators offer fine-tuning jobs over HTTP; each accepted job trains on a
// GPU pool and is submitted to a Hugging Face repo before its deadline. The workflows are
// `trainingJob` (one per task) and `poolScheduler` (one per pool), in workflow.ts.
import * as path from 'node:path';
import { openHub } from '../../infra/hub/hub';
import type { Subnet } from '../subnet';
import { makeGradientsControlActivities, makeGradientsGpuActivities } from './activities';
import { FileJobRecord } from './job-record';
import { prepareWith } from './prepare-data';

export const gradients = {
  name: 'gradients',
  netuid: 56,
  intake: 'job-offers',
  workflows: ['trainingJob', 'poolScheduler'],
  controlActivities: ({ settings, store }) =>
    makeGradientsControlActivities({
      workDir: path.join(settings.dataDir, 'work'),
      store,
      hub: () => openHub(settings.hub),
      prepare: prepareWith(settings),
      record: FileJobRecord.inDataDir(settings.dataDir),
    }),
  gpuActivities: ({ settings, store, trainerFor }) =>
    makeGradientsGpuActivities({
      workDir: path.join(settings.dataDir, 'work'),
      store,
      hub: () => openHub(settings.hub),
      trainerFor,
    }),
} satisfies Subnet;
