// The shared training loop's state as a plain class: segments, the best state, decisions,
// pause/stop flags, the deadline, and a readable event log. No Temporal imports; every subnet's
// workflow state extends it with what that subnet adds (commits, jobs, scores).
import type { Decision, LrFindReport, SegmentResult } from '../common/types';

export class TrainingState {
  phase: string = 'validating';
  paused = false;
  stopRequested = false;
  plannedSteps: number;
  stepsDone = 0; // the step training continues from
  extraStepsTaken = 0;
  backtracks = 0;
  lrScale = 1;
  fitToDeadline = false; // training.fitToDeadline: plannedSteps follows the deadline, not the operator
  trainingDeadline?: number; // epoch ms: training stops by then (re-derived from the chain between segments)
  learningRate?: number; // peak LR of training: the input's, or the LR range test's
  lrFind?: LrFindReport;
  segments: SegmentResult[] = [];
  decisions: Decision[] = [];
  best?: SegmentResult;
  events: string[] = [];

  constructor(plannedSteps: number) {
    this.plannedSteps = plannedSteps;
  }

  enter(phase: string, note: string): void {
    this.phase = phase;
    this.event(note);
  }

  event(note: string): void {
    this.events.push(`${new Date().toISOString()} ${note}`);
  }

  /** Records a finished segment; the best state is the one with the lowest finite held-out loss. */
  addSegment(raw: SegmentResult): void {
    // JSON carries NaN as null: put it back, so comparisons and formatting stay numeric.
    const s: SegmentResult = { ...raw, trainLoss: raw.trainLoss ?? NaN, heldOutLoss: raw.heldOutLoss ?? NaN };
    this.segments.push(s);
    this.stepsDone = s.endStep;
    if (
      Number.isFinite(s.heldOutLoss) &&
      !s.nonFinite &&
      s.endStep > 0 &&
      (!this.best || s.heldOutLoss < this.best.heldOutLoss)
    )
      this.best = s;
    this.event(
      `segment ${s.segment}${s.attempt > 1 ? ` (attempt ${s.attempt})` : ''}: steps ${s.startStep}→${s.endStep}, train ${fmt(s.trainLoss)}, held-out ${fmt(s.heldOutLoss)}`,
    );
  }

  /** Applies a policy decision. */
  apply(d: Decision): void {
    this.decisions.push(d);
    this.event(`${d.action.toUpperCase()}: ${d.reason}`);
    if (d.action === 'extend') {
      this.plannedSteps += d.extraSteps ?? 0;
      this.extraStepsTaken += d.extraSteps ?? 0;
    } else if (d.action === 'backtrack' && this.best) {
      this.backtracks += 1;
      this.lrScale = d.lrScale ?? this.lrScale;
      this.stepsDone = this.best.endStep;
    }
  }

  /** The state the next segment starts from. */
  resumeFrom(): SegmentResult['state'] | null {
    const last = this.decisions.at(-1);
    if (last?.action === 'backtrack' && this.best) return this.best.state;
    return this.segments.at(-1)?.state ?? null;
  }

  stepsRun(): number {
    return this.segments.reduce((a, s) => a + (s.endStep - s.startStep), 0);
  }

  /** Markdown lines about training for the Temporal UI's "current details" panel. */
  trainingDetails(): string[] {
    const lines = [
      `**phase:** ${this.phase}${this.paused ? ' (paused)' : ''}  **step:** ${this.stepsDone}/${this.plannedSteps}`,
    ];
    if (this.lrFind)
      lines.push(
        `**LR range test:** suggested ${this.lrFind.suggestedLr.toExponential(2)}, training at ${this.lrFind.chosenLr.toExponential(2)} (${this.lrFind.steps} points)`,
      );
    if (this.best)
      lines.push(
        `**best:** step ${this.best.endStep}, held-out loss ${fmt(this.best.heldOutLoss)} (segment ${this.best.segment})`,
      );
    const last = this.segments.at(-1);
    if (last)
      lines.push(
        `**last segment:** train ${fmt(last.trainLoss)}, held-out ${fmt(last.heldOutLoss)}, ${Math.round(last.tokensPerSec ?? 0)} tok/s on ${last.backend}`,
      );
    return lines;
  }
}

/** A loss for people: 4 decimals, or what it is when not a finite number (NaN arrives as null). */
export function fmt(x: number | null | undefined): string {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(4) : String(x ?? NaN);
}
