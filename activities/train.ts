// The shared gpu activities: one training segment, and the LR range test. Thin: they pick the
// trainer the config names (trainers/), pass heartbeats and cancellation through, and map errors
// to retryable / non-retryable. If this worker dies mid-segment, the segment is retried elsewhere
// from the same starting state: at most one segment is lost.
import { activityInfo, cancellationSignal, heartbeat } from '@temporalio/activity';
import type { LrFindReport, SegmentResult, Telemetry } from '../common/types';
import { recordSegment, recordTrainProgress } from '../infra/metrics';
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

/** How often the last progress is repeated while a trainer is between reports. */
const KEEP_ALIVE_MS = 5_000;

/**
 * Runs `work` with hooks for the trainer: its progress becomes the heartbeat, and the last progress
 * is repeated every few seconds while it loads, evaluates or uploads, so a slow stage is not taken
 * for a dead worker. (A blocked event loop stops the repeats too: a hung worker is still noticed.)
 */
export async function withTrainerHooks<T>(
  work: (hooks: TrainerHooks) => Promise<T>,
  keepAliveMs = KEEP_ALIVE_MS,
  observe: TrainerHooks['progress'] = () => undefined,
): Promise<T> {
  let last: unknown = { stage: 'starting' };
  const keepAlive = setInterval(() => heartbeat(last), keepAliveMs);
  try {
    return await work({
      progress: (p) => {
        heartbeat((last = p));
        observe(p);
      },
      signal: cancellationSignal(),
      attempt: activityInfo().attempt,
    });
  } finally {
    clearInterval(keepAlive);
  }
}

export function makeTrainActivities(trainerFor: (config: TrainerInput) => Trainer) {
  return {
    async trainSegment(input: Recorded<SegmentRequest> & { telemetry?: Telemetry }): Promise<SegmentResult> {
      const { telemetry, ...rest } = input;
      const req = { ...rest, trainer: rest.trainer ?? { kind: 'tfjs' as const } };
      // Segments recorded before telemetry was passed carry no labels: they are not measured.
      const labels = telemetry && { ...telemetry.labels, queue: activityInfo().taskQueue };
      const result = await mapErrors(() =>
        withTrainerHooks(
          (hooks) => trainerFor(req.trainer).trainSegment(req, hooks),
          KEEP_ALIVE_MS,
          labels && ((p) => recordTrainProgress(labels, p)),
        ),
      );
      if (telemetry) recordSegment(telemetry.labels, result, telemetry.backtrack ?? false);
      return result;
    },
    /** Preflight on the gpu queue: can a worker here train this config at all? */
    async checkTrainer(input: CapacityRequest): Promise<Capacity> {
      return mapErrors(() => trainerFor(input.trainer).checkCapacity(input));
    },
    async lrFind(input: Recorded<LrFindRequest>): Promise<LrFindReport> {
      const req = { ...input, trainer: input.trainer ?? { kind: 'tfjs' as const } };
      return mapErrors(() => withTrainerHooks((hooks) => trainerFor(req.trainer).findLearningRate(req, hooks)));
    },
  };
}
