// A Connito mining cycle's input: the shared parts (corpus, curation, trainer, model, training,
// policy, evaluation) plus Connito's own (miner, commit windows, score). One JSON object,
// validated by zod in the CLI, the workflow and every activity; `{}` is the embedded demo.
import { z } from 'zod';
import { CorpusSchema, CurateSchema, int, nameSchema, TrainingLoopShape } from '../../common/config';

/** Timing around the chain's commit windows. */
export const CommitSchema = z
  .object({
    /** Time kept free before commit 1 opens for checkpointing, hashing and signing. */
    reserveSeconds: z.number().min(0).max(86_400).default(15),
    /** A round whose commit 1 opens sooner than this is skipped for the next one. */
    minTrainSeconds: z.number().min(0).max(86_400).default(60),
    /** Rounds to try when a commit window is missed (a checkpoint older than this is never committed). */
    maxRounds: int(1, 10).default(2),
  })
  .strict();

export const MinerSchema = z
  .object({
    netuid: int(0, 65_535).default(102),
    /** Wallet and hotkey names under the workers' wallet folder; secrets never travel through Temporal. */
    wallet: nameSchema().default('default'),
    hotkey: nameSchema().default('default'),
  })
  .strict();

/**
 * Publishing as Connito's validators read it: the expert group's shard (model_expgroup_{g}.pt) in
 * the miner's Hugging Face repo, named in commit 2. Needs model.moe. Without a repo the checkpoint
 * goes only to our store (the devnet's validator reads it there).
 */
export const PublishSchema = z
  .object({
    /** The miner's Hugging Face model repo, owner/name (≤32 chars: Connito's commit budget); HF_TOKEN on the gpu worker. */
    repo: z
      .string()
      .regex(/^[\w.-]+\/[\w.-]+$/, 'must be a Hugging Face repo id, owner/name')
      .max(32, 'must be at most 32 characters (Connito commits it in 128 bytes)')
      .nullable()
      .default(null),
    /** The expert group this hotkey trains (Connito's task.exp.group_id). */
    expertGroup: int(0, 1023).default(0),
    /** How many groups the experts are split into: expert e is in group e mod expertGroups. */
    expertGroups: int(1, 1024).default(1),
    /** The shard's dtype (SN102 validators load fp16/bf16 shards; float32 keeps the miner's exact weights). */
    dtype: z.enum(['float32', 'float16', 'bfloat16']).default('float32'),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.expertGroup >= p.expertGroups)
      ctx.addIssue({
        code: 'custom',
        path: ['expertGroup'],
        input: p.expertGroup,
        message: `must be below publish.expertGroups (${p.expertGroups})`,
      });
  });

export const ScoreSchema = z
  .object({
    timeoutSeconds: int(1, 7 * 24 * 3600).default(900),
    pollSeconds: z.number().min(0.1).max(600).default(2),
  })
  .strict();

export const CycleInputSchema = z
  .object({
    corpus: CorpusSchema.prefault({}),
    curate: CurateSchema.prefault({}),
    ...TrainingLoopShape,
    commit: CommitSchema.prefault({}),
    miner: MinerSchema.prefault({}),
    publish: PublishSchema.prefault({}),
    score: ScoreSchema.prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.publish.repo !== null && !c.model.moe)
      ctx.addIssue({
        code: 'custom',
        path: ['publish', 'repo'],
        input: c.publish.repo,
        message: 'publishing an expert shard needs experts: set model.moe (Connito trains expert groups)',
      });
  });

export type CycleInput = z.infer<typeof CycleInputSchema>;
export type MinerInput = z.infer<typeof MinerSchema>;

/**
 * One cycle per hotkey at a time: the CLI and minerLoop start cycles under this id, which names the
 * hotkey, so Temporal refuses a second cycle on the hotkey while one runs (whoever started it).
 */
export function cycleWorkflowId(miner: MinerInput): string {
  return `miningCycle-${miner.netuid}-${miner.wallet}.${miner.hotkey}`;
}
export type CommitInput = z.infer<typeof CommitSchema>;
export type PublishInput = z.infer<typeof PublishSchema>;
