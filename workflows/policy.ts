// The cycle's decisions after each training segment, as pure functions: continue, extend, stop
// early, backtrack to the best state, or finish. No Temporal, no clocks: `now` is passed in, so
// the table-driven tests and the workflow see exactly the same behaviour.
import type { PolicyInput } from '../common/config';
import type { Decision, SegmentResult } from '../common/types';

export interface PolicyState {
  segments: SegmentResult[]; // every segment so far, in order; the last one was just evaluated
  best?: SegmentResult; // lowest finite held-out loss so far (the last segment included)
  plannedSteps: number;
  extraStepsTaken: number; // by autoExtend
  backtracks: number;
  lrScale: number;
  stopRequested: boolean;
  segmentSteps: number;
  now: number;
  deadline?: number; // epoch ms: training must stop by then
}

/** Segments in a row (ending with the last) that did not beat the best before them by minImprovement. */
export function evaluationsWithoutImprovement(segments: SegmentResult[], minImprovement: number): number {
  let best = Infinity;
  let since = 0;
  for (const s of segments) {
    if (Number.isFinite(s.heldOutLoss) && s.heldOutLoss < best - minImprovement) {
      best = s.heldOutLoss;
      since = 0;
    } else since += 1;
  }
  return since;
}

/** Average wall time of a step over the segments so far, for deadline arithmetic. */
export function msPerStep(segments: SegmentResult[]): number | undefined {
  const steps = segments.reduce((a, s) => a + (s.endStep - s.startStep), 0);
  const ms = segments.reduce((a, s) => a + s.seconds * 1000, 0);
  return steps > 0 ? ms / steps : undefined;
}

export function decide(cfg: PolicyInput, s: PolicyState): Decision {
  const last = s.segments.at(-1);
  if (!last) throw new Error('decide() needs at least one segment');
  const at = last.segment;
  const d = (action: Decision['action'], reason: string, extra: Partial<Decision> = {}): Decision => ({
    afterSegment: at,
    action,
    reason,
    ...extra,
  });
  const backtrack = (why: string): Decision => {
    if (!s.best || s.best === last) return d('finish', `${why}; no better state to go back to`);
    if (s.backtracks >= cfg.maxBacktracks)
      return d(
        'finish',
        `${why}; already backtracked ${s.backtracks} times (policy.maxBacktracks), committing the best state`,
      );
    const lrScale = s.lrScale * cfg.lrBackoff;
    return d(
      'backtrack',
      `${why}; restoring the best state (step ${s.best.endStep}, held-out ${fmt(s.best.heldOutLoss)}) with LR × ${fmt(lrScale)}`,
      { restoreStep: s.best.endStep, lrScale },
    );
  };

  if (s.stopRequested) return d('finish', 'stop requested by the operator');
  if (last.nonFinite) return backtrack(`segment ${at} hit non-finite loss (${last.skippedBatches} batches skipped)`);
  if (s.best && s.best !== last && last.heldOutLoss > s.best.heldOutLoss + cfg.backtrackThreshold) {
    return backtrack(
      `held-out loss ${fmt(last.heldOutLoss)} is worse than the best ${fmt(s.best.heldOutLoss)} by more than ${cfg.backtrackThreshold}`,
    );
  }
  if (last.stoppedEarly)
    return d('finish', `training deadline reached at step ${last.endStep} (commit 1 must be made in time)`);
  const stale = evaluationsWithoutImprovement(s.segments, cfg.minImprovement);
  if (stale >= cfg.patience)
    return d('earlyStop', `no held-out improvement for ${stale} evaluations (policy.patience ${cfg.patience})`);
  if (last.endStep >= s.plannedSteps) {
    const improving = stale === 0;
    const room = cfg.maxExtraSteps - s.extraStepsTaken;
    const perStep = msPerStep(s.segments);
    const fits = s.deadline === undefined || (perStep !== undefined && s.now + perStep * s.segmentSteps < s.deadline);
    if (cfg.autoExtend && improving && room > 0 && fits) {
      const extraSteps = Math.min(room, s.segmentSteps);
      return d('extend', `still improving at the planned ${s.plannedSteps} steps; extending by ${extraSteps}`, {
        extraSteps,
      });
    }
    return d('finish', `planned ${s.plannedSteps} steps done`);
  }
  return d('continue', `held-out ${fmt(last.heldOutLoss)} (best ${fmt(s.best?.heldOutLoss ?? NaN)})`);
}

/**
 * training.fitToDeadline: the planned steps that end training at the deadline, i.e. the steps done
 * plus what fits in the time left at the wall-clock speed measured so far (process starts,
 * evaluations and queueing included, so it errs short), never more than `limit`.
 */
export function stepsFittingDeadline(s: {
  stepsDone: number;
  stepsTrained: number;
  wallMs: number;
  now: number;
  deadline: number;
  limit: number;
}): number {
  const perStep = s.wallMs / s.stepsTrained;
  const fit = Math.floor(Math.max(0, s.deadline - s.now) / perStep);
  return Math.min(s.limit, s.stepsDone + fit);
}

/** Why extending by `steps` is not possible, or undefined when it is. */
export function extensionProblem(
  steps: number,
  s: Pick<PolicyState, 'segments' | 'plannedSteps' | 'now' | 'deadline'>,
  stepsDone: number,
): string | undefined {
  if (!Number.isInteger(steps) || steps <= 0) return `steps must be a positive whole number, not ${steps}`;
  if (s.deadline === undefined) return undefined;
  const perStep = msPerStep(s.segments);
  if (perStep === undefined) return 'no training speed measured yet: wait for the first segment to finish';
  const finishAt = s.now + perStep * (s.plannedSteps + steps - stepsDone);
  if (finishAt > s.deadline) {
    return `${steps} more steps would end training at ${new Date(finishAt).toISOString()}, after the deadline ${new Date(s.deadline).toISOString()} for commit 1 (about ${Math.max(0, Math.floor((s.deadline - s.now) / perStep) - (s.plannedSteps - stepsDone))} more steps fit)`;
  }
  return undefined;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(4) : String(x);
}
