// A Gradients miner's configuration: its GPU pools, what it accepts, and its service.
import { z } from 'zod';
import { TaskTypeSchema } from './protocol';

/** One pool of GPUs (or CPUs): a task queue `minerflow-gpu-<name>` served by its own gpu workers. */
export const PoolSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and - (1–32 characters)'),
    /** Jobs that train at the same time on this pool. */
    slots: z.number().int().min(1).max(64).default(1),
    /** Memory per slot for training, in bytes. */
    memoryBytes: z.number().int().positive(),
    /** Which trainer its workers run, and so which task types and methods it can take. */
    trainer: z.enum(['tfjs', 'command']).default('tfjs'),
    taskTypes: z.array(TaskTypeSchema).min(1).default(['InstructTextTask', 'DpoTask', 'ChatTask']),
    methods: z
      .array(z.enum(['full', 'lora', 'lastLayers']))
      .min(1)
      .default(['full', 'lora', 'lastLayers']),
    /** Tokens per second per billion parameters for full fine-tuning, until the record of past jobs knows better. */
    tokensPerSecPerBillion: z.number().positive().default(2_000),
  })
  .strict();
export type Pool = z.infer<typeof PoolSchema>;
