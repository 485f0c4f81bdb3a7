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

export interface TrainResult {
  stateKey: string; // store key of the trained weights (model.safetensors) and their state.json
  modelHash: string;
  steps: number;
  trainLoss: number;
  tokens: number;
  seconds: number;
  tokensPerSec: number;
  skippedBatches: number;
  backend: string;
}

export interface CheckpointRef {
  hash: string; // Connito model hash, 48 hex chars
  key: string; // store key of the folder holding model.safetensors and manifest.json
  location: string; // where a validator downloads it from
  heldOutLoss: number;
  baselineLoss: number; // the untrained model's held-out loss, for reference
  trainLoss: number;
  steps: number;
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
  status: 'scored' | 'timeout';
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

export type CyclePhase = 'validating' | 'curate' | 'train' | 'checkpoint' | 'commit1' | 'commit2' | 'awaitScore' | 'done' | 'failed';

export interface CycleStatus {
  phase: CyclePhase;
  dataset?: Pick<DatasetRef, 'id' | 'trainDocuments' | 'heldOutDocuments'>;
  training?: Pick<TrainResult, 'steps' | 'trainLoss' | 'tokensPerSec' | 'backend'>;
  checkpoint?: CheckpointRef;
  plan?: CommitPlan;
  commits: CommitReceipt[];
  score?: ScoreReport;
  events: string[]; // human-readable log of what happened, in order
}

export interface CycleResult {
  workflowId: string;
  hotkey: string;
  dataset: DatasetRef;
  training: TrainResult;
  checkpoint: CheckpointRef;
  commits: CommitReceipt[];
  score: ScoreReport;
}
