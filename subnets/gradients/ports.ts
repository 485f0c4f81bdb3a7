// The seams inside the Gradients miner: the HTTP service (service.ts) decides and answers; the
// job workflows (workflow.ts) train and submit; the record of past jobs feeds the decisions.
// Small interfaces so each side is built and tested on its own and wired in one place.
import type { MinerSubmission, MinerTaskOffer, TaskType, TrainRequestText } from './protocol';

/** One job holding or waiting for a slot on a pool (deadline and estimate in epoch ms / seconds). */
export interface PoolJob {
  taskId: string;
  deadline: number; // epoch ms: when the validator expects the submission
  estimatedSeconds: number; // training time still expected
  startedAt: number | null; // epoch ms, null while queued
}

/** What a pool is doing now: running jobs hold slots; queued ones wait in deadline order. */
export interface PoolLoad {
  pool: string;
  running: PoolJob[];
  queued: PoolJob[];
}

/** The acceptance policy's answer for one offer, recorded with the job. */
export interface OfferDecision {
  accepted: boolean;
  reason: string; // for people and metrics: why accepted or declined
  pool: string | null; // where it will train (accepted only)
  method: 'full' | 'lora' | 'lastLayers' | null;
  estimatedSeconds: number | null;
  estimatedFinish: number | null; // epoch ms
}

/** Starts and reads training jobs (Temporal behind it). */
export interface JobStarter {
  /** Starts the trainingJob workflow for an accepted offer; starting the same task twice is a no-op. */
  start(job: {
    request: TrainRequestText;
    taskType: TaskType;
    offer: MinerTaskOffer | null;
    decision: OfferDecision;
    receivedAt: number;
  }): Promise<void>;
  /** Whether the task's job is still running (preparing, waiting, training or submitting). */
  running(taskId: string): Promise<boolean>;
  /** The job's latest submission, null while there is none; undefined for an unknown task. */
  submission(taskId: string): Promise<MinerSubmission | null | undefined>;
}

/** The pools' current load, for estimating when a new job would finish. */
export interface PoolView {
  loads(): Promise<PoolLoad[]>;
}

/** Key of the record of past jobs: what throughput and outcomes are grouped by. */
export interface JobKind {
  family: string; // model family, e.g. 'llama', 'qwen2', 'minerflow-gpt'
  sizeBucket: string; // parameter count bucket, e.g. '10-100M', '1-3B'
  taskType: TaskType;
}

export interface JobOutcome extends JobKind {
  taskId: string;
  event: 'offered' | 'accepted' | 'declined' | 'finished' | 'late' | 'failed';
  tokensPerSec?: number;
  finalLoss?: number;
  seconds?: number;
}

export interface JobKindStats {
  offered: number;
  accepted: number;
  finished: number; // in time
  late: number;
  failed: number;
  tokensPerSec: number | null; // mean over finished jobs
  finalLoss: number | null; // mean over finished jobs
}

/** The durable record of past jobs (survives restarts). */
export interface JobRecord {
  add(outcome: JobOutcome): Promise<void>;
  stats(kind: JobKind): Promise<JobKindStats>;
}
