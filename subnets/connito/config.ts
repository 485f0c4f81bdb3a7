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
    score: ScoreSchema.prefault({}),
  })
  .strict();

export type CycleInput = z.infer<typeof CycleInputSchema>;
export type MinerInput = z.infer<typeof MinerSchema>;
export type CommitInput = z.infer<typeof CommitSchema>;
