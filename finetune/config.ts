// training.finetune: what fine-tuning a base model (training.initFrom) optimises and which weights
// train. null (the default) is pre-training from text, as before.
import { z } from 'zod';

const int = (min: number, max: number) => z.number().int().min(min).max(max);

/**
 * A LoRA rank: one for every layer, one per layer (a list as long as model.nLayer, checked when the
 * base model is known), or rising linearly with depth from `first` (block 0) to `last` (the top block),
 * as the Gradients guide advises (later layers adapt more). 0 leaves that layer's group unadapted.
 */
const RankSchema = z.union([
  int(1, 4096),
  z.array(int(0, 4096)).min(1),
  z.object({ first: int(0, 4096), last: int(0, 4096) }).strict(),
]);

/** One module group's adapters; scale = alpha / rank of each layer (standard LoRA). */
const LoraGroupSchema = z
  .object({ rank: RankSchema.default(16), alpha: z.number().gt(0).max(1e6).default(32) })
  .strict();

export const LoraMethodSchema = z
  .object({
    kind: z.literal('lora'),
    /** attn.c_attn and attn.c_proj of every block; null: no adapters there. */
    attention: LoraGroupSchema.nullable().prefault({}),
    /** mlp.c_fc and mlp.c_proj (and every expert's, in mixture-of-experts blocks); null: none. */
    mlp: LoraGroupSchema.nullable().prefault({}),
    /** Token and position embeddings (the tied output head too): frozen by default, the guide's "minimal adaptation". */
    trainEmbeddings: z.boolean().default(false),
    /** Seed of A's random init (B starts at zero, so the adapted model starts as the base). */
    seed: int(0, 2 ** 31 - 1).default(0),
  })
  .strict()
  .refine((m) => m.attention !== null || m.mlp !== null || m.trainEmbeddings, {
    message: 'adapts nothing: set attention or mlp (or trainEmbeddings)',
  });

export const MethodSchema = z.discriminatedUnion('kind', [
  /** Every weight trains: best for small models, costs optimizer moments for all of them. */
  z.object({ kind: z.literal('full') }).strict(),
  /** Only the last `layers` blocks and the final layer norm train (embeddings frozen): the guide's compromise. */
  z.object({ kind: z.literal('lastLayers'), layers: int(1, 1024) }).strict(),
  LoraMethodSchema,
]);

export const FinetuneSchema = z
  .object({
    /** sft: masked cross-entropy on the response tokens; dpo: preference pairs against the frozen base. */
    objective: z.enum(['sft', 'dpo']),
    /**
     * Default LoRA rank 16 (alpha 32) on attention and MLP: safe whatever the base's size (a few
     * percent of its parameters train, so AdamW's moments stay small), and the schema cannot see the
     * base's size to pick full fine-tuning for tiny ones — set {kind: 'full'} for those.
     */
    method: MethodSchema.prefault({ kind: 'lora' }),
    dpo: z
      .object({
        /** Strength of the KL anchor to the reference (the base): the sigmoid DPO loss's β. */ beta: z
          .number()
          .gt(0)
          .max(100)
          .default(0.1),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type FinetuneInput = z.infer<typeof FinetuneSchema>;
export type MethodInput = z.infer<typeof MethodSchema>;
export type LoraMethodInput = z.infer<typeof LoraMethodSchema>;
