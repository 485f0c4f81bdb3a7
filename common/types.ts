// Types every subnet shares across the Temporal boundary: datasets, training states, segments,
// decisions, the LR range test. Plain JSON only (they are stored in workflow history).

export interface DatasetRef {
  id: string; // content address of the curated split
  /** What a .jsonl line holds: text documents {text} (absent: text), or fine-tuning examples (finetune/examples.ts). */
  kind?: 'text' | 'sft' | 'preference';
  trainKey: string; // store keys of the .jsonl files
  heldOutKey: string;
  reportKey: string;
  documentsIn: number;
  trainDocuments: number;
  heldOutDocuments: number;
  dropped: Record<string, number>; // reason → count (reasons with none left out); details in the report
  reused: boolean; // unchanged input: an earlier curation was reused
}

/** A saved training state in the store: weights, optimizer moments, counters. */
export interface StateRef {
  key: string; // store folder holding model.safetensors, optimizer.safetensors, state.json
  step: number;
  modelHash: string;
}

/** Who a piece of work is for, so workers can label their metrics: names only, never keys. */
export interface Telemetry {
  labels: { subnet: string; hotkey: string }; // hotkey: `wallet/hotkey`
  backtrack?: boolean; // this segment starts from the best state after a backtrack
}

/** What one training segment did (the train activity's result). */
export interface SegmentResult {
  segment: number; // 1-based
  attempt: number; // >1 when a worker died and the segment was retried
  startStep: number;
  endStep: number;
  state: StateRef; // saved at the end of the segment
  trainLoss: number;
  heldOutLoss: number; // NaN when non-finite
  emaHeldOutLoss?: number; // the EMA weights' held-out loss, when training.emaDecay is on
  heldOutMetrics?: Record<string, number>; // fine-tuning's other held-out figures (DPO: preferenceAccuracy, rewardMargin)
  skippedBatches: number; // non-finite batches skipped in this segment
  nonFinite: boolean; // the segment ended in a NaN storm
  stoppedEarly: boolean; // stopped at the training deadline
  seconds: number;
  tokensPerSec: number;
  lr: number; // the LR at the segment's last step
  backend: string;
  metricsKey: string; // per-step metrics (JSON lines) in the store
}

export type DecisionAction = 'continue' | 'extend' | 'earlyStop' | 'backtrack' | 'finish';

export interface Decision {
  afterSegment: number;
  action: DecisionAction;
  reason: string;
  extraSteps?: number; // extend
  restoreStep?: number; // backtrack: the best state's step
  lrScale?: number; // backtrack: the new LR multiplier
}

/** The LR range test's outcome (the lrFind activity's result); small, it is kept in history. */
export interface LrFindReport {
  suggestedLr: number; // read from the curve (model/lr-finder.ts)
  chosenLr: number; // the suggestion clamped to training.lrFind [floor, ceiling]: what training uses
  steepestLr: number;
  minLossLr: number;
  diverged: boolean;
  steps: number; // points measured
  seconds: number;
  curve: { lr: number; loss: number }[]; // smoothed loss, thinned to a few dozen points
  curveKey: string; // every point, in the store
}

export interface TrainingSummary {
  steps: number; // step of the committed (best) state
  stepsRun: number; // every step executed, re-done ones included
  plannedSteps: number;
  segments: number;
  trainLoss: number;
  heldOutLoss: number;
  tokensPerSec: number;
  backend: string;
  best: StateRef;
  learningRate: number; // the peak LR trained with (the LR range test's when it ran)
  lrFind?: LrFindReport;
}
