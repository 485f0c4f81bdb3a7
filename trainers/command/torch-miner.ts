// The `command` trainer config for the PyTorch miner in miners/torch (Connito's train.py interface):
// the cycle's model and training settings mapped onto its YAML keys. Tests, the bench and the
// README use it; a Connito train.py config differs only in `command`, `config` and `evaluate`.
import * as path from 'node:path';
import type { CommandTrainerInput } from './schema';

export interface TorchMinerOptions {
  python: string; // e.g. .tools/venv-torch/bin/python
  minerDir?: string; // miners/torch
  progress?: 'jsonl' | 'log';
  /**
   * Checkpoints every this many steps (crash-resume points). One process per segment: the segment's
   * end always gets one. Kept alive: it must divide training.segmentSteps (default: segmentSteps).
   */
  checkpointInterval?: number;
  /** trainer.keepAlive: one process per run instead of one per segment (default: off). */
  keepAlive?: { idleSeconds: number } | null;
  env?: Record<string, string>;
}

export function torchMinerTrainer(opts: TorchMinerOptions): CommandTrainerInput {
  const dir = opts.minerDir ?? path.join(__dirname, '..', '..', 'miners', 'torch');
  const progress = opts.progress ?? 'log';
  return {
    kind: 'command',
    command: [opts.python, path.join(dir, 'train.py'), '--path', '{config}'],
    cwd: null,
    env: { OMP_NUM_THREADS: '1', ...opts.env },
    config: {
      template: {},
      set: {
        'model.d_model': '{model.dModel}',
        'model.n_layer': '{model.nLayer}',
        'model.n_head': '{model.nHead}',
        'model.seed': '{model.seed}',
        'moe.num_experts': '{model.moe.experts}',
        'moe.num_experts_per_tok': '{model.moe.topK}',
        'moe.capacity_factor': '{model.moe.capacityFactor}',
        'moe.router_aux_loss_coef': '{model.moe.auxLossWeight}',
        'moe.every': '{model.moe.every}',
        'moe.num_worker_groups': 2,
        'opt.lr': '{lr}',
        'opt.weight_decay': '{training.weightDecay}',
        'opt.beta1': '{training.beta1}',
        'opt.beta2': '{training.beta2}',
        'opt.grad_clip': '{training.gradClip}',
        'opt.ema_decay': '{training.emaDecay}',
        'sched.warmup_steps': '{training.warmupSteps}',
        'sched.total_steps': '{plannedSteps}',
        'run.seed': '{training.seed}',
        'local_par.gradient_accumulation_steps': '{training.gradAccumSteps}',
        'task.exp.data.batch_size': '{training.batchSize}',
        'task.exp.data.sequence_length': '{model.seqLen}',
        'task.exp.data.train_file': '{train}',
        'ckpt.checkpoint_path': '{checkpointDir}',
        'ckpt.checkpoint_interval': opts.checkpointInterval ?? (opts.keepAlive ? '{training.segmentSteps}' : 1_000_000),
        'train.max_steps': '{untilStep}',
        'log.format': progress === 'jsonl' ? 'jsonl' : 'console',
      },
    },
    lrFindSet: {
      'sched.lr_ramp': { min_lr: '{training.lrFind.minLr}', max_lr: '{training.lrFind.maxLr}' },
      'sched.total_steps': '{training.lrFind.steps}',
      'train.max_steps': '{training.lrFind.steps}',
    },
    progress:
      progress === 'jsonl'
        ? { format: 'jsonl' }
        : {
            format: 'log',
            patterns: [
              String.raw`batch loss\s+loss=(?<loss>\S+)\s+inner_opt_step=(?<stepIndex>\d+)`,
              String.raw`scheduler step\s+lr=(?<lr>\S+)`,
            ],
            tokensPerStep: null,
          },
    evaluate: [
      opts.python,
      path.join(dir, 'evaluate.py'),
      '--path',
      '{config}',
      '--checkpoint',
      '{checkpoint}',
      '--heldout',
      '{heldOut}',
      '--max-tokens',
      '{maxTokens}',
      '--batch-size',
      '{batchSize}',
    ],
    export: [opts.python, path.join(dir, 'export.py'), '--checkpoint', '{checkpoint}', '--out', '{out}'],
    checkpointPattern: String.raw`^globalver_(?<version>\d+)_inneropt_(?<step>\d+)$`,
    stop: { sigintGraceSeconds: 20, sigtermGraceSeconds: 10 },
    stallSeconds: 300,
    maxRestarts: 3,
    keepAlive: opts.keepAlive ?? null,
  };
}
