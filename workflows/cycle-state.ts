// The cycle's state as a plain class: segments, the best state, decisions, pause/stop flags, and
// what the `status` query and the Temporal UI's "current details" show. No Temporal imports.
import type { CheckpointRef, CommitPlan, CommitReceipt, CyclePhase, CycleStatus, DatasetRef, Decision, LrFindReport, ScoreReport, SegmentResult } from '../common/types';

export class CycleState {
  phase: CyclePhase = 'validating';
  paused = false;
  stopRequested = false;
  plannedSteps: number;
  stepsDone = 0; // the step training continues from
  extraStepsTaken = 0;
  backtracks = 0;
  lrScale = 1;
  trainingDeadline?: number;
  learningRate?: number; // peak LR of training: the input's, or the LR range test's
  lrFind?: LrFindReport;
  dataset?: DatasetRef;
  segments: SegmentResult[] = [];
  decisions: Decision[] = [];
  best?: SegmentResult;
  checkpoint?: CheckpointRef;
  plan?: CommitPlan;
  commits: CommitReceipt[] = [];
  missedWindows: string[] = [];
  score?: ScoreReport;
  events: string[] = [];

  constructor(plannedSteps: number) {
    this.plannedSteps = plannedSteps;
  }

  enter(phase: CyclePhase, note: string): void {
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
    if (Number.isFinite(s.heldOutLoss) && !s.nonFinite && s.endStep > 0 && (!this.best || s.heldOutLoss < this.best.heldOutLoss)) this.best = s;
    this.event(`segment ${s.segment}${s.attempt > 1 ? ` (attempt ${s.attempt})` : ''}: steps ${s.startStep}→${s.endStep}, train ${fmt(s.trainLoss)}, held-out ${fmt(s.heldOutLoss)}`);
  }

  /** Applies a policy decision; returns the state training continues from. */
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

  status(): CycleStatus {
    return {
      phase: this.phase,
      paused: this.paused,
      round: this.plan?.round,
      trainingDeadline: this.trainingDeadline,
      learningRate: this.learningRate,
      lrFind: this.lrFind && { chosenLr: this.lrFind.chosenLr, suggestedLr: this.lrFind.suggestedLr, points: this.lrFind.steps, curve: this.lrFind.curve.length },
      plannedSteps: this.plannedSteps,
      stepsDone: this.stepsDone,
      dataset: this.dataset && { id: this.dataset.id, trainDocuments: this.dataset.trainDocuments, heldOutDocuments: this.dataset.heldOutDocuments },
      segments: [...this.segments],
      decisions: [...this.decisions],
      best: this.best && { segment: this.best.segment, step: this.best.endStep, heldOutLoss: this.best.heldOutLoss, key: this.best.state.key },
      checkpoint: this.checkpoint,
      plan: this.plan,
      commits: [...this.commits],
      missedWindows: [...this.missedWindows],
      score: this.score,
      events: [...this.events],
    };
  }

  /** Markdown for the Temporal UI's "current details" panel. */
  details(): string {
    const lines = [`**phase:** ${this.phase}${this.paused ? ' (paused)' : ''}  **step:** ${this.stepsDone}/${this.plannedSteps}`];
    if (this.lrFind) lines.push(`**LR range test:** suggested ${this.lrFind.suggestedLr.toExponential(2)}, training at ${this.lrFind.chosenLr.toExponential(2)} (${this.lrFind.steps} points)`);
    if (this.best) lines.push(`**best:** step ${this.best.endStep}, held-out loss ${fmt(this.best.heldOutLoss)} (segment ${this.best.segment})`);
    const last = this.segments.at(-1);
    if (last) lines.push(`**last segment:** train ${fmt(last.trainLoss)}, held-out ${fmt(last.heldOutLoss)}, ${Math.round(last.tokensPerSec ?? 0)} tok/s on ${last.backend}`);
    if (this.trainingDeadline) lines.push(`**training deadline:** ${new Date(this.trainingDeadline).toISOString()} (commit 1 of round ${this.plan?.round})`);
    if (this.checkpoint) lines.push(`**checkpoint:** ${this.checkpoint.hash}, held-out ${fmt(this.checkpoint.heldOutLoss)} (untrained ${fmt(this.checkpoint.baselineLoss)})`);
    for (const c of this.commits) lines.push(`**${c.phase}:** block ${c.block}, ${c.bytes} bytes`);
    for (const m of this.missedWindows) lines.push(`**MISSED:** ${m}`);
    if (this.score) lines.push(`**score:** ${this.score.status}, incentive share ${this.score.incentiveShare ?? '-'}, validator loss ${this.score.validatorLoss ?? '-'}`);
    lines.push('', ...this.events.slice(-6).map((e) => `- ${e}`));
    return lines.join('\n');
  }
}

/** A loss for people: 4 decimals, or what it is when not a finite number (NaN arrives as null). */
export function fmt(x: number | null | undefined): string {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(4) : String(x ?? NaN);
}
