// The `command` trainer's config (cycle input `trainer`): an external training process minerflow
// supervises. Pure zod, no Node imports: the workflow bundle validates it too.
import { z } from 'zod';

const argv = z.array(z.string().min(1)).min(1);
const seconds = (max: number) => z.number().min(0).max(max);

/**
 * Progress from the trainer: our JSON-lines protocol on stdout (README), regular expressions over
 * its log lines (defaults: Connito's structlog console lines), or its Prometheus endpoint.
 */
export const ProgressSourceSchema = z.discriminatedUnion('format', [
  z.object({ format: z.literal('jsonl') }).strict(),
  z
    .object({
      format: z.literal('log'),
      /** Regular expressions with named groups; each line is tried against each (ANSI colours stripped first). */
      patterns: z
        .array(z.string().min(1))
        .min(1)
        .default([
          String.raw`batch loss\s+loss=(?<loss>\S+)\s+inner_opt_step=(?<stepIndex>\d+)`,
          String.raw`scheduler step\s+lr=(?<lr>\S+)`,
        ]),
      /** Tokens one reported step trains (for tokens/s, which the log lines do not carry); null: batch × seqLen × accumulation. */
      tokensPerStep: z.number().int().positive().nullable().default(null),
    })
    .strict(),
  z
    .object({
      format: z.literal('prometheus'),
      /** e.g. http://127.0.0.1:8100/metrics (Connito's miner: port 8100 + rank). */
      url: z.url(),
      intervalSeconds: z.number().min(0.1).max(3600).default(5),
      /** Metric names (Connito's telemetry.py); step is not exported there, so it is counted from the loss gauge's changes unless named. */
      metrics: z
        .object({
          loss: z.string().default('miner_training_loss'),
          lr: z.string().default('miner_learning_rate'),
          tokensPerSec: z.string().default('miner_tokens_per_sec'),
          step: z.string().nullable().default(null),
        })
        .strict()
        .prefault({}),
    })
    .strict(),
]);

export const CommandTrainerSchema = z
  .object({
    kind: z.literal('command'),
    /**
     * The training command, argv form (no shell). Placeholders: {config} (the YAML written for this
     * attempt), {checkpointDir}, {train}, {heldOut}, {workDir}.
     */
    command: argv,
    /** Working folder of every command (relative to the worker's); null: the worker's. */
    cwd: z.string().min(1).nullable().default(null),
    /** Added to the worker's environment for every command. */
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), z.string()).default({}),
    /**
     * The YAML config written for each attempt ({config}): `template` (your config.yaml as an object)
     * with the dotted keys of `set` set on it. Values are placeholders or hold them: {lr} (the
     * learning rate × the loop's scale), {plannedSteps}, {untilStep}, {checkpointDir}, {train},
     * {heldOut}, {workDir}, and any field of the cycle's model / training input ({model.dModel},
     * {training.batchSize}, {training.lrFind.minLr}, …); a value that is exactly one placeholder keeps
     * its type. Defaults: Connito's keys.
     */
    config: z
      .object({
        template: z.record(z.string(), z.unknown()).default({}),
        set: z.record(z.string().min(1), z.unknown()).default({
          'opt.lr': '{lr}',
          'sched.total_steps': '{plannedSteps}',
          'ckpt.checkpoint_path': '{checkpointDir}',
        }),
      })
      .strict()
      .prefault({}),
    progress: ProgressSourceSchema.prefault({ format: 'log' }),
    /** Keys set on top of config.set for the LR range test's run (a ramped LR over training.lrFind.steps); null: the trainer has none. */
    lrFindSet: z.record(z.string().min(1), z.unknown()).nullable().default(null),
    /**
     * Held-out evaluation of one checkpoint; must print a JSON line with "loss" (nats/token) last.
     * Placeholders: {checkpoint} (a checkpoint folder; empty for the untrained model), {heldOut},
     * {config}, {maxTokens}, {batchSize}.
     */
    evaluate: argv,
    /** Writes a checkpoint as the safetensors file a subnet publishes: {checkpoint}, {out}, {config}. */
    export: argv.nullable().default(null),
    /** Checkpoint folders in {checkpointDir}: a regex whose named group `step` is the trainer's step (Connito's layout by default). */
    checkpointPattern: z
      .string()
      .min(1)
      .default(String.raw`^globalver_(?<version>\d+)_inneropt_(?<step>\d+)$`),
    /** Deadline / stop: SIGINT, then SIGTERM after sigintGrace, then SIGKILL after sigtermGrace. */
    stop: z
      .object({ sigintGraceSeconds: seconds(3600).default(20), sigtermGraceSeconds: seconds(3600).default(10) })
      .strict()
      .prefault({}),
    /** No progress for this long: the trainer is taken for hung, killed, and the segment retried from its latest checkpoint. */
    stallSeconds: z.number().min(1).max(86_400).default(300),
    /** Restarts of a segment after a crash (exit non-zero, hang, lost worker) before the cycle fails. */
    maxRestarts: z.number().int().min(0).max(100).default(3),
    /**
     * Keep the trainer running across segments: the next segment adopts the process when it goes on
     * exactly where the last one ended (same run, config and LR, from the state that segment returned),
     * so the trainer starts once per run, not once per segment, and each segment's evaluation runs
     * beside it. A backtrack, a new LR or a retry starts it afresh. The trainer then runs to
     * {untilStep} = the planned steps, and a segment ends at its first checkpoint at or past the
     * segment's end step: make the trainer's checkpoint interval divide training.segmentSteps. A
     * process no segment adopts within idleSeconds (a pause, the end of training) is stopped.
     * null: one process per segment attempt.
     */
    keepAlive: z
      .object({ idleSeconds: z.number().min(1).max(3600).default(15) })
      .strict()
      .nullable()
      .default(null),
  })
  .strict();

export type CommandTrainerInput = z.infer<typeof CommandTrainerSchema>;
export type ProgressSource = z.infer<typeof ProgressSourceSchema>;
