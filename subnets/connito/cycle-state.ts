// A Connito cycle's state: the shared training state plus the dataset, the published checkpoint,
// the round's commit plan, commits, missed windows and the score. No Temporal imports.
import type { DatasetRef } from '../../common/types';
import { fmt, TrainingState } from '../../workflows/training-state';
import type {
  CheckpointRef,
  CommitPlan,
  CommitReceipt,
  CyclePhase,
  CycleStatus,
  DistributeReport,
  ScoreReport,
} from './types';

export class CycleState extends TrainingState {
  declare phase: CyclePhase;
  dataset?: DatasetRef;
  checkpoint?: CheckpointRef;
  plan?: CommitPlan;
  commits: CommitReceipt[] = [];
  missedWindows: string[] = [];
  score?: ScoreReport;
  /** The validators' global model this round trained from (Distribute), committed as commit 2's v. */
  globalVer?: number;
  distribute?: DistributeReport;

  override enter(phase: CyclePhase, note: string): void {
    super.enter(phase, note);
  }

  status(): CycleStatus {
    return {
      phase: this.phase,
      paused: this.paused,
      round: this.plan?.round,
      trainingDeadline: this.trainingDeadline,
      learningRate: this.learningRate,
      lrFind: this.lrFind && {
        chosenLr: this.lrFind.chosenLr,
        suggestedLr: this.lrFind.suggestedLr,
        points: this.lrFind.steps,
        curve: this.lrFind.curve.length,
      },
      plannedSteps: this.plannedSteps,
      stepsDone: this.stepsDone,
      dataset: this.dataset && {
        id: this.dataset.id,
        trainDocuments: this.dataset.trainDocuments,
        heldOutDocuments: this.dataset.heldOutDocuments,
      },
      segments: [...this.segments],
      decisions: [...this.decisions],
      best: this.best && {
        segment: this.best.segment,
        step: this.best.endStep,
        heldOutLoss: this.best.heldOutLoss,
        key: this.best.state.key,
      },
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
    const lines = this.trainingDetails();
    if (this.trainingDeadline)
      lines.push(
        `**training deadline:** ${new Date(this.trainingDeadline).toISOString()} (commit 1 of round ${this.plan?.round})`,
      );
    if (this.checkpoint)
      lines.push(
        `**checkpoint:** ${this.checkpoint.hash}, held-out ${fmt(this.checkpoint.heldOutLoss)} (untrained ${fmt(this.checkpoint.baselineLoss)})`,
      );
    for (const c of this.commits) lines.push(`**${c.phase}:** block ${c.block}, ${c.bytes} bytes`);
    for (const m of this.missedWindows) lines.push(`**MISSED:** ${m}`);
    if (this.score)
      lines.push(
        `**score:** ${this.score.status}, incentive share ${this.score.incentiveShare ?? '-'}, validator loss ${this.score.validatorLoss ?? '-'}${this.score.reason ? ` (${this.score.reason})` : ''}`,
      );
    lines.push('', ...this.events.slice(-6).map((e) => `- ${e}`));
    return lines.join('\n');
  }
}
