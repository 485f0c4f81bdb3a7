// The trainer port: what the shared training loop needs from a trainer, whatever runs the steps
// (the built-in TensorFlow.js GPT in trainers/tfjs, or an external process that reports progress
// and writes checkpoints on its own schedule). No Temporal imports: the gpu activities wrap it.
import type { DatasetRef, LrFindReport, SegmentResult, StateRef } from '../common/types';
import type { EvalInput, ModelInput, TrainerInput, TrainingInput } from '../common/config';

/** One training segment: from a saved state (or a fresh / warm start) to a step or a deadline. */
export interface SegmentRequest {
  runId: string;
  segment: number; // 1-based
  dataset: DatasetRef;
  trainer: TrainerInput;
  model: ModelInput;
  training: TrainingInput;
  eval: EvalInput;
  plannedSteps: number; // the LR schedule's horizon
  from: StateRef | null; // null: a fresh model (or training.initFrom)
  untilStep: number;
  lrScale: number; // the loop's LR multiplier (backtracks, drills)
  stopAt?: number; // epoch ms: stop here with what is done, whatever untilStep says
}

/** The LR range test on the dataset, for a fresh model of this config. */
export interface LrFindRequest {
  runId: string;
  dataset: DatasetRef;
  trainer: TrainerInput;
  model: ModelInput;
  training: TrainingInput;
  stopAt?: number;
}

/** A trained state, evaluated as a validator would and ready for a subnet to publish. */
export interface ExportRequest {
  dataset: DatasetRef;
  trainer: TrainerInput;
  model: ModelInput;
  eval: EvalInput;
  state: StateRef;
  /** A fine-tuned state (training.finetune): evaluated by its objective on the held-out examples, against the base (initFrom). */
  training?: Pick<TrainingInput, 'initFrom' | 'finetune'>;
}

export interface ExportedModel {
  weightsFile: string; // local file, safetensors: the weights to publish (raw or EMA, the better)
  modelHash: string; // Connito's hash of weightsFile (blake2b-192 over sorted names and bytes)
  files: Record<string, string>; // what travels beside the weights (e.g. tokenizer.json) → local file
  heldOutLoss: number;
  heldOutBitsPerByte: number;
  baselineLoss: number; // the untrained model's, on the same held-out tokens
  rawHeldOutLoss: number;
  emaHeldOutLoss?: number;
  weights: 'raw' | 'ema';
  tokenizer: 'bpe' | 'bytes';
  vocabSize: number;
  model: Record<string, unknown>; // the architecture, for the manifest
}

/** What a trainer reports while it works: the activity heartbeats it, the CLI draws it. */
/** Can this worker train this config at all? Asked at cycle start, before any data is prepared. */
export interface CapacityRequest {
  trainer: TrainerInput;
  model: ModelInput;
  training: TrainingInput;
}

export interface Capacity {
  backend: string;
  estimatedBytes: number; // peak memory of training, all replicas
  availableBytes: number;
}

export interface TrainProgress {
  stage: 'training';
  segment: number;
  resumeFrom: string | null;
  step: number;
  totalSteps: number;
  loss: number;
  auxLoss: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  restores: number;
}

export interface TrainerHooks {
  /** Called often; must be cheap. Stage-only reports ({stage: 'loading'}) keep a heartbeat alive. */
  progress(p: TrainProgress | { stage: string; [k: string]: unknown }): void;
  /** Aborted when the attempt is cancelled or timed out: stop promptly and throw its reason. */
  signal: AbortSignal;
  /** 1 for a first try; >1 when a dead worker's segment is retried elsewhere. */
  attempt: number;
}

export interface Trainer {
  readonly kind: TrainerInput['kind'];
  trainSegment(req: SegmentRequest, hooks: TrainerHooks): Promise<SegmentResult>;
  findLearningRate(req: LrFindRequest, hooks: TrainerHooks): Promise<LrFindReport>;
  exportModel(req: ExportRequest, hooks: TrainerHooks): Promise<ExportedModel>;
  /** Throws (naming the fields) when the config cannot be trained on this worker. */
  checkCapacity(req: CapacityRequest): Promise<Capacity>;
}
