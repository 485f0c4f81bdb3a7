// Everything the control worker registers as workflows, and the messages clients send them.
export { miningCycle, statusQuery, pauseSignal, resumeSignal, stopTrainingSignal, extendTrainingUpdate } from './cycle';
export { minerLoop, loopStatusQuery, stopLoopSignal } from './miner-loop';
