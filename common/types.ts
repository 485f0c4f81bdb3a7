// Types that cross the Temporal boundary: activity inputs/outputs and the cycle's result and status.
// Plain JSON only (they are stored in workflow history).

export interface DatasetRef {
  id: string; // content address of the curated split
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

export interface CheckpointRef {
  hash: string; // Connito model hash, 48 hex chars
  key: string; // store key of the folder holding model.safetensors and manifest.json
  location: string; // where a validator downloads it from
  heldOutLoss: number; // nats per token of its own tokenizer
  heldOutBitsPerByte: number; // the same loss per byte of text: comparable across tokenizers
  tokenizer: 'bpe' | 'bytes'; // tokenizer.json beside the weights
  vocabSize: number;
  baselineLoss: number; // the untrained model's held-out loss, for reference
  trainLoss: number;
  steps: number;
  round: number; // the round it was trained for; never committed in a later one than allowed
  weights: 'raw' | 'ema'; // which weights of the state were published (the better on held-out)
  rawHeldOutLoss: number;
  emaHeldOutLoss?: number;
}

export interface CommitWindow {
  round: number;
  opensAt: number; // ms since epoch (chain clock)
  closesAt: number;
}

export interface CommitPlan {
  round: number;
  validateStartBlock: number;
  commit1: CommitWindow; // MinerCommit1: signature of the hash
  commit2: CommitWindow; // after MinerCommit1 ends, before MinerCommit2 ends: hash + location
  validateOpensAt: number;
}

export interface CommitReceipt {
  phase: 'commit1' | 'commit2';
  block: number;
  payload: string;
  bytes: number;
}

export interface ScoreReport {
  status: 'scored' | 'timeout' | 'missed';
  round: number;
  hotkey: string; // ss58 address
  uid?: number;
  incentiveShare?: number; // Incentive[uid] / sum(Incentive)
  validatorLoss?: number; // held-out loss the validator measured
  baselineLoss?: number;
  rawScore?: number; // max(0, baseline − loss)^1.2
  rank?: number;
  reward?: number;
  reason?: string;
}

export type CyclePhase = 'validating' | 'curate' | 'lrFind' | 'train' | 'paused' | 'checkpoint' | 'commit1' | 'commit2' | 'awaitScore' | 'done' | 'failed';

export interface CycleStatus {
  phase: CyclePhase;
  paused: boolean;
  round?: number;
  trainingDeadline?: number; // epoch ms: training stops by then to make commit 1
  learningRate?: number; // the peak LR training uses, once known
  lrFind?: { chosenLr: number; suggestedLr: number; points: number; curve: number }; // points measured, curve points kept
  plannedSteps: number;
  stepsDone: number;
  dataset?: Pick<DatasetRef, 'id' | 'trainDocuments' | 'heldOutDocuments'>;
  segments: SegmentResult[];
  decisions: Decision[];
  best?: { segment: number; step: number; heldOutLoss: number; key: string };
  checkpoint?: CheckpointRef;
  plan?: CommitPlan;
  commits: CommitReceipt[];
  missedWindows: string[];
  score?: ScoreReport;
  events: string[]; // human-readable log of what happened, in order
}

export interface CycleResult {
  workflowId: string;
  hotkey: string;
  dataset: DatasetRef;
  training: TrainingSummary;
  segments: SegmentResult[];
  decisions: Decision[];
  checkpoint: CheckpointRef;
  commits: CommitReceipt[];
  missedWindows: string[];
  score: ScoreReport;
}
