// The cycle's state as a plain class: what the `status` query returns and what the Temporal UI's
// "current details" show. No Temporal imports, so it is unit-testable on its own.
import type { CheckpointRef, CommitPlan, CommitReceipt, CyclePhase, CycleStatus, DatasetRef, ScoreReport, TrainResult } from '../common/types';

export class CycleState {
  phase: CyclePhase = 'validating';
  dataset?: DatasetRef;
  training?: TrainResult;
  checkpoint?: CheckpointRef;
  plan?: CommitPlan;
  commits: CommitReceipt[] = [];
  score?: ScoreReport;
  events: string[] = [];

  enter(phase: CyclePhase, note: string): void {
    this.phase = phase;
    this.event(note);
  }

  event(note: string): void {
    this.events.push(`${new Date().toISOString()} ${note}`);
  }

  status(): CycleStatus {
    return {
      phase: this.phase,
      dataset: this.dataset && { id: this.dataset.id, trainDocuments: this.dataset.trainDocuments, heldOutDocuments: this.dataset.heldOutDocuments },
      training: this.training && { steps: this.training.steps, trainLoss: this.training.trainLoss, tokensPerSec: this.training.tokensPerSec, backend: this.training.backend },
      checkpoint: this.checkpoint,
      plan: this.plan,
      commits: [...this.commits],
      score: this.score,
      events: [...this.events],
    };
  }

  /** Markdown for the Temporal UI's "current details" panel. */
  details(): string {
    const lines = [`**phase:** ${this.phase}`];
    if (this.dataset) lines.push(`**dataset:** ${this.dataset.id} (${this.dataset.trainDocuments} train / ${this.dataset.heldOutDocuments} held-out docs)`);
    if (this.training) lines.push(`**trained:** ${this.training.steps} steps, train loss ${this.training.trainLoss.toFixed(4)}, ${this.training.tokensPerSec.toFixed(0)} tok/s on ${this.training.backend}`);
    if (this.checkpoint) lines.push(`**checkpoint:** ${this.checkpoint.hash}, held-out loss ${this.checkpoint.heldOutLoss.toFixed(4)} (untrained ${this.checkpoint.baselineLoss.toFixed(4)})`);
    if (this.plan) lines.push(`**round:** ${this.plan.round}; commit 1 opens ${new Date(this.plan.commit1.opensAt).toISOString()}`);
    for (const c of this.commits) lines.push(`**${c.phase}:** block ${c.block}, ${c.bytes} bytes`);
    if (this.score) lines.push(`**score:** ${this.score.status}, incentive share ${this.score.incentiveShare ?? '-'}, validator loss ${this.score.validatorLoss ?? '-'}`);
    lines.push('', ...this.events.slice(-5).map((e) => `- ${e}`));
    return lines.join('\n');
  }
}
