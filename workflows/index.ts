// Everything the control worker registers as workflows, and the messages clients send them.
export { pauseSignal, resumeSignal, stopTrainingSignal, extendTrainingUpdate } from './training-loop';
export { miningCycle, statusQuery } from '../subnets/connito/workflow';
export { minerLoop, loopStatusQuery, stopLoopSignal } from './miner-loop';
export {
  trainingJob,
  poolScheduler,
  submissionQuery,
  jobStatusQuery,
  poolLoadQuery,
  requestSlotSignal,
  releaseSlotSignal,
} from '../subnets/gradients/workflow';
