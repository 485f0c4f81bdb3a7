// Connito's types that cross the Temporal boundary: the published checkpoint, commit windows and
// receipts, the validators' score, and the cycle's status and result. Plain JSON only.
import type { DatasetRef, Decision, SegmentResult, TrainingSummary } from '../../common/types';
import type { Excluded } from './distribute';

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
  /** Where Connito's validators fetch it: the expert shard in the miner's Hugging Face repo (then `hash` is the shard's). */
  hub?: { repo: string; revision: string; commitSha: string; file: string; expertGroup: number };
}

export interface CommitWindow {
  round: number;
  opensAt: number; // ms since epoch (chain clock)
  closesAt: number;
  startBlock?: number; // [startBlock, endBlock): the window in blocks (absent in plans recorded before blocks were kept)
  endBlock?: number;
}

export interface CommitPlan {
  round: number;
  atBlock?: number; // the chain's head when planned (absent in plans recorded before it was kept)
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
  /** scored; rejected: the validator refused the submission (reason says why); overwritten: another
   *  commitment from this hotkey replaced ours before the round was validated (winningHash); timeout; missed. */
  status: 'scored' | 'rejected' | 'overwritten' | 'timeout' | 'missed';
  winningHash?: string;
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

export type CyclePhase =
  | 'validating'
  | 'preflight'
  | 'curate'
  | 'distribute'
  | 'lrFind'
  | 'train'
  | 'paused'
  | 'checkpoint'
  | 'commit1'
  | 'commit2'
  | 'awaitScore'
  | 'done'
  | 'failed';

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
  /** What the round started from: the validators' global model, or why not (absent before Distribute existed). */
  distribute?: DistributeReport;
}

/** What Distribute found for a round: a warm start from the validators' global model, or why not. */
export type DistributeReport =
  | { status: 'none'; reason: string; excluded: Excluded[] }
  | {
      status: 'warm';
      hash: string;
      globalVer: number;
      repo: string;
      revision: string;
      initFrom: string; // store key of the warm start (model.safetensors + tokenizer.json)
      validators: string[];
    };
