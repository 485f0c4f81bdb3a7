// The shared gpu activities: one training segment, and the LR range test. Thin: they pick the
// trainer the config names (trainers/), pass heartbeats and cancellation through, and map errors
// to retryable / non-retryable. If this worker dies mid-segment, the segment is retried elsewhere
// from the same starting state: at most one segment is lost.
import { activityInfo, cancellationSignal, heartbeat } from '@temporalio/activity';
import type { LrFindReport, SegmentResult } from '../common/types';
import type {
  Capacity,
  CapacityRequest,
  LrFindRequest,
  SegmentRequest,
  Trainer,
  TrainerHooks,
} from '../trainers/trainer';
import type { TrainerInput } from '../common/config';
import { mapErrors } from './errors';

/** Inputs recorded before trainers were a port carry no `trainer`: they meant the built-in one. */
type Recorded<T extends { trainer: TrainerInput }> = Omit<T, 'trainer'> & { trainer?: TrainerInput };

function hooks(): TrainerHooks {
  return { progress: (p) => heartbeat(p), signal: cancellationSignal(), attempt: activityInfo().attempt };
}

export function makeTrainActivities(trainerFor: (config: TrainerInput) => Trainer) {
  return {
    async trainSegment(input: Recorded<SegmentRequest>): Promise<SegmentResult> {
      const req = { ...input, trainer: input.trainer ?? { kind: 'tfjs' as const } };
      return mapErrors(() => trainerFor(req.trainer).trainSegment(req, hooks()));
    },
    /** Preflight on the gpu queue: can a worker here train this config at all? */
    async checkTrainer(input: CapacityRequest): Promise<Capacity> {
      return mapErrors(() => trainerFor(input.trainer).checkCapacity(input));
    },
    async lrFind(input: Recorded<LrFindRequest>): Promise<LrFindReport> {
      const req = { ...input, trainer: input.trainer ?? { kind: 'tfjs' as const } };
      return mapErrors(() => trainerFor(req.trainer).findLearningRate(req, hooks()));
    },
  };
}
