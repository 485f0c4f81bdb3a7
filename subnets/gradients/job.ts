// A Gradients training job's input and result: what JobStarter.start receives (ports.ts) plus the
// part of the miner's configuration a job needs (its pools and training defaults). Plain types and
// zod; no Temporal imports.
import { z } from 'zod';
import { FinetuneSchema, type FinetuneInput } from '../../finetune/config';
import { EvalSchema, PolicySchema, TrainerSchema, TrainingSchema } from '../../common/config';
import type { DatasetRef } from '../../common/types';
import { PoolSchema } from './config';
import type { MinerSubmission, MinerTaskOffer, TaskType, TrainRequestText } from './protocol';
import { MinerTaskOfferSchema, TaskTypeSchema, TrainRequestTextSchema } from './protocol';
import type { OfferDecision } from './ports';

/** What the job needs from the miner's configuration. */
export const JobConfigSchema = z
  .object({
    pools: z.array(PoolSchema).min(1),
    /** Training defaults for every job; initFrom is the job's base model and finetune follows its task type. */
    trainer: TrainerSchema.prefault({ kind: 'tfjs' }),
    training: TrainingSchema.prefault({}),
    policy: PolicySchema.prefault({}),
    eval: EvalSchema.prefault({}),
    /** Training stops this long before the deadline: the time to evaluate, export and upload the model. */
    reserveSeconds: z.number().min(0).max(86_400).default(60),
    /** The miner's Hugging Face user or organisation: submissions go to `<hubNamespace>/<expected_repo_name>` (G.O.D's HUGGINGFACE_USERNAME). */
    hubNamespace: z
      .string()
      .regex(/^[A-Za-z0-9][\w.-]{0,95}$/, 'a Hugging Face user or organisation name')
      .default('minerflow'),
    /** The miner's hotkey label (`wallet/hotkey`), for search attributes and metric labels. */
    hotkey: z.string().default(''),
  })
  .strict();
export type JobConfig = z.infer<typeof JobConfigSchema>;

export const TrainingJobInputSchema = z.object({
  request: TrainRequestTextSchema,
  taskType: TaskTypeSchema,
  offer: MinerTaskOfferSchema.nullable(),
  decision: z.object({
    accepted: z.boolean(),
    reason: z.string(),
    pool: z.string().nullable(),
    method: z.enum(['full', 'lora', 'lastLayers']).nullable(),
    estimatedSeconds: z.number().nullable(),
    estimatedFinish: z.number().nullable(),
  }),
  receivedAt: z.number().int().positive(),
  config: JobConfigSchema,
});

/** JobStarter.start's argument plus the miner's configuration. */
export interface TrainingJobInput {
  request: TrainRequestText;
  taskType: TaskType;
  offer: MinerTaskOffer | null;
  decision: OfferDecision;
  receivedAt: number; // epoch ms: when the training request arrived (the deadline counts from it)
  config: z.input<typeof JobConfigSchema>;
}

/** The base model a job fine-tunes: fetched from the hub into the store (training.initFrom). */
export interface BaseModel {
  repo: string;
  commitSha: string;
  initFrom: string; // store key holding model.safetensors, tokenizer.json (when BPE) and manifest.json
  model: {
    seqLen: number;
    dModel: number;
    nLayer: number;
    nHead: number;
    tokenizer: 'bpe' | 'bytes';
    vocabSize: number;
  };
  parameters: number;
}

export type JobOutcomeEvent = 'finished' | 'late' | 'failed';

export interface TrainingJobResult {
  taskId: string;
  pool: string;
  outcome: JobOutcomeEvent;
  reason: string;
  submission: MinerSubmission | null;
  deadline: number; // epoch ms
  submittedAt: number | null; // epoch ms
  heldOutLoss: number | null; // of the submitted model, on the job's held-out split
  steps: number;
  dataset: DatasetRef | null;
}

/** What the job reports while it runs (query `jobStatus`). */
export interface TrainingJobStatus {
  taskId: string;
  pool: string;
  phase: string;
  deadline: number;
  trainingDeadline: number;
  slotGrantedAt: number | null;
  steps: number;
  bestHeldOutLoss: number | null;
  submission: MinerSubmission | null;
  events: string[];
}

/** Workflow ids: one job per task, one scheduler per pool. */
export const jobWorkflowId = (taskId: string) => `gradients-job-${taskId}`;
export const poolWorkflowId = (pool: string) => `gradients-pool-${pool}`;

/**
 * The fine-tuning objective for the trainer (wt-ft's `training.finetune`): DPO for preference pairs,
 * supervised fine-tuning otherwise; the method is the one the acceptance policy chose for the pool's
 * memory. Plain text datasets (kind 'text') train as before, without it.
 */
export function finetuneFor(
  kind: DatasetRef['kind'],
  method: OfferDecision['method'],
  dpoBeta = 0.1,
): FinetuneInput | undefined {
  if (kind === undefined || kind === 'text') return undefined;
  return FinetuneSchema.parse({
    objective: kind === 'preference' ? 'dpo' : 'sft',
    // lastLayers: the last two blocks, the guide's compromise between LoRA and full fine-tuning.
    method: method === 'lastLayers' ? { kind: 'lastLayers', layers: 2 } : { kind: method ?? 'full' },
    dpo: { beta: dpoBeta },
  });
}
