// `minerflow gradients demo`: a Gradients (SN56) miner and a G.O.D-like validator on this machine.
// Started here: the Temporal dev server (unless one answers), the devnet with the miner's hotkey on
// netuid 56 and the validator staked, a local hub, a control worker and two pools each with its own
// gpu worker process, and the miner's service. Two base GPTs of different size are pre-trained on Brown (or
// reused from the data folder) and published; the validator then offers a dozen tasks of mixed type,
// model size and deadline, starts the accepted ones, collects and scores the submissions, and a
// summary table is printed. Exit code 1 when an accepted job was not delivered in time.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { Runtime } from '@temporalio/worker';
import { exportBrown } from '../curation/brown';
import { saveBaseModel } from '../finetune/base-model';
import { disconnectAllChains, SubtensorChain } from '../infra/chain/subtensor';
import { ensureDevServer } from '../infra/dev-server';
import { startDevnet } from '../infra/devnet/server';
import { openHub } from '../infra/hub/hub';
import { startLocalHub } from '../infra/hub/local-hub';
import { logger } from '../infra/log';
import type { Settings } from '../infra/settings';
import { connectClient, connectWorker } from '../infra/temporal';
import { ensureHotkey } from '../infra/wallet';
import { initBackend } from '../model/backend';
import { MANIFEST_FILE, TOKENIZER_FILE, WEIGHTS_FILE } from '../model/checkpoint';
import { disposeWeights, initWeights, parameterCount, type GptConfig } from '../model/gpt';
import { ByteTokenizer } from '../model/tokenizer';
import { Trainer } from '../model/trainer';
import { jobWorkflowId, type TrainingJobResult } from '../subnets/gradients/job';
import { LocalValidator, type TaskOutcome, type ValidatorTask } from '../subnets/gradients/local-validator';
import { temporalJobStarter, temporalPoolView } from '../subnets/gradients/temporal-ports';
import { createControlWorker } from '../workers/control';
import { intFlag, parseCommand } from './args';
import { GradientsServeConfigSchema, jobConfigOf, startMinerService } from './gradients';
import { sdkLogger } from './local';

const log = logger.child({ module: 'gradients-demo' });
const NETUID = 56;
const HUB_NAMESPACE = 'demo-miner';
const MIB = 1024 ** 2;

/** The two bases: toy GPTs with bytes as tokens, the second about twice the first. */
export const DEMO_BASES: { repo: string; cfg: GptConfig; share: number }[] = [
  {
    repo: 'minerflow-demo/minerflow-gpt-brown-s',
    cfg: { vocabSize: 256, seqLen: 128, dModel: 48, nLayer: 2, nHead: 4 },
    share: 0.4,
  },
  {
    repo: 'minerflow-demo/minerflow-gpt-brown-m',
    cfg: { vocabSize: 256, seqLen: 128, dModel: 64, nLayer: 3, nHead: 4 },
    share: 0.6,
  },
];

/**
 * The miner's serve config. Toy scale throughout: pool memory in MiB so the two bases land on
 * different pools, and a throughput figure (on this 2-core host: ~2000 tokens/s for the small base)
 * that makes the policy's estimates about half a minute per job.
 */
export const DEMO_CONFIG = GradientsServeConfigSchema.parse({
  wallet: 'gradients-demo',
  hotkey: 'miner',
  netuid: NETUID,
  pools: [
    // Full fine-tuning with AdamW needs ~19 B per parameter here: the small base fits 2 MiB, the larger one does not.
    { name: 'small', slots: 1, memoryBytes: 2 * MIB, methods: ['full'], tokensPerSecPerBillion: 0.15 },
    { name: 'large', slots: 1, memoryBytes: 64 * MIB, methods: ['full'], tokensPerSecPerBillion: 0.15 },
  ],
  policy: { tokensPerRow: 128, overheadSeconds: 15, reserveSeconds: 20, reserveFraction: 0.1 },
  jobs: {
    training: { steps: 120, segmentSteps: 40, batchSize: 8, learningRate: 1e-3, warmupSteps: 10 },
    eval: { maxTokens: 8192 },
    reserveSeconds: 20,
    hubNamespace: HUB_NAMESPACE,
  },
});

const S = DEMO_BASES[0].repo;
const M = DEMO_BASES[1].repo;
const text = (task: 'instruct' | 'chat' | 'dpo', format: 'json' | 'csv' = 'json') => ({
  task,
  trainRows: 240,
  testRows: 40,
  format,
});

/** The dozen tasks: mixed type, size and deadline (hours_to_complete from the start_training request). */
export function demoTasks(params: Record<string, number>): Omit<ValidatorTask, 'taskId'>[] {
  const min = (m: number) => m / 60;
  return [
    { taskType: 'InstructTextTask', model: S, paramsCount: params[S], hoursToComplete: min(4), data: text('instruct') },
    { taskType: 'ChatTask', model: S, paramsCount: params[S], hoursToComplete: min(5), data: text('chat') },
    { taskType: 'DpoTask', model: S, paramsCount: params[S], hoursToComplete: min(6), data: text('dpo', 'csv') },
    {
      taskType: 'InstructTextTask',
      model: M,
      paramsCount: params[M],
      hoursToComplete: min(5),
      data: text('instruct', 'csv'),
    },
    { taskType: 'DpoTask', model: M, paramsCount: params[M], hoursToComplete: min(7), data: text('dpo') },
    { taskType: 'ChatTask', model: M, paramsCount: params[M], hoursToComplete: min(8), data: text('chat') },
    { taskType: 'InstructTextTask', model: 'unsloth/Meta-Llama-3.1-8B', paramsCount: 8e9, hoursToComplete: 3 },
    { taskType: 'DpoTask', model: 'unsloth/Qwen2.5-7B-Instruct', paramsCount: 7.6e9, hoursToComplete: 2 },
    { taskType: 'GrpoTask', model: S, paramsCount: params[S], hoursToComplete: min(6) },
    {
      taskType: 'ImageTask',
      model: 'stabilityai/stable-diffusion-xl-base-1.0',
      paramsCount: 3.5e9,
      hoursToComplete: 1,
    },
    // Too close: 42 s and 45 s, less the policy's reserve (20 s + 10%), leave less than either base's job takes.
    {
      taskType: 'InstructTextTask',
      model: S,
      paramsCount: params[S],
      hoursToComplete: min(0.7),
      data: text('instruct'),
    },
    { taskType: 'ChatTask', model: M, paramsCount: params[M], hoursToComplete: min(0.75), data: text('chat') },
  ];
}

/** The short run the e2e test makes: one accepted instruct job, one too large, one too close. */
export function shortDemoTasks(params: Record<string, number>): Omit<ValidatorTask, 'taskId'>[] {
  const all = demoTasks(params);
  return [all[0], all[6], all[10]];
}

export interface DemoReport {
  outcomes: (TaskOutcome & { job: TrainingJobResult | null })[];
  /** Accepted tasks not delivered and scored in time. */
  failed: TaskOutcome[];
  seconds: number;
}

/** Runs the demo against `settings` (their data folder, Temporal address); `print` gets the story. */
export async function runGradientsDemo(
  base: Settings,
  opts: { short?: boolean; pretrainSeconds?: number; print?: (line: string) => void } = {},
): Promise<DemoReport> {
  const print = opts.print ?? ((l: string) => console.log(l));
  const t0 = Date.now();
  const since = () => `${Math.round((Date.now() - t0) / 1000)}s`.padStart(5);
  const say = (l: string) => print(`[${since()}] ${l}`);
  const home = path.join(base.dataDir, 'gradients-demo');
  const token = `hf_${randomBytes(16).toString('hex')}`;
  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    const hub = await startLocalHub({ dir: path.join(home, 'hub'), token });
    cleanup.push(() => hub.close());
    // The demo's own wallets folder: no hotkey of the operator's is created or read.
    const settings: Settings = {
      ...base,
      hub: { endpoint: hub.url, token },
      walletsDir: path.join(home, 'wallets'),
    };
    say(`local hub at ${hub.url}`);

    await initBackend('auto', () => undefined);
    const params = await publishBases(settings, home, opts.pretrainSeconds ?? 60, say);

    await cryptoWaitReady();
    const minerKey = await ensureHotkey(settings.walletsDir, DEMO_CONFIG.wallet, DEMO_CONFIG.hotkey);
    const validatorKey = new Keyring({ type: 'sr25519', ss58Format: 42 }).addFromUri('//minerflow-demo-validator');
    const { phases, blockMs } = settings.chain.local;
    const devnet = await startDevnet({
      blockMs,
      phases,
      register: [
        { netuid: NETUID, address: minerKey.address },
        { netuid: NETUID, address: validatorKey.address, stakeRao: 1_000e9 }, // G.O.D's miners require ≥ 1000 TAO
      ],
    });
    cleanup.push(async () => {
      await disconnectAllChains();
      await devnet.close();
    });
    const chain = await SubtensorChain.connect({ url: devnet.url, phases, blockMs });
    say(`devnet at ${devnet.url}: miner ${minerKey.address} and validator (1000 TAO staked) on netuid ${NETUID}`);

    const server = await ensureDevServer(settings, (m) => log.info(m));
    cleanup.push(() => server.stop());
    const connection = await connectWorker(settings);
    cleanup.push(() => connection.close());
    const control = await createControlWorker(settings, connection);
    const controlRun = control.run();
    cleanup.push(async () => {
      control.shutdown();
      await controlRun;
    });
    for (const p of DEMO_CONFIG.pools) {
      const worker = spawnPoolWorker(settings, p.name, path.join(home, `worker-${p.name}.log`));
      cleanup.push(() => stopChild(worker));
    }
    const client = await connectClient(settings);
    cleanup.push(() => client.connection.close());
    say(
      `Temporal at ${settings.temporal.address}; workers: control (in process), ${DEMO_CONFIG.pools.map((p) => `pool ${p.name} (${p.slots} slot, ${p.memoryBytes / MIB} MiB; logs ${path.join(home, `worker-${p.name}.log`)})`).join(', ')}`,
    );

    const miner = await startMinerService({
      settings,
      config: DEMO_CONFIG,
      chain,
      jobs: temporalJobStarter(client, jobConfigOf(DEMO_CONFIG)),
      poolView: temporalPoolView(client, DEMO_CONFIG.pools),
      host: '127.0.0.1',
      port: 0,
    });
    cleanup.push(() => miner.close());
    say(`miner service at ${miner.service.url}`);

    const validator = new LocalValidator({
      keypair: validatorKey,
      minerUrl: miner.service.url,
      minerHotkey: miner.minerHotkey,
      hub: openHub(settings.hub),
      workDir: path.join(home, 'validator'),
      log: say,
    });
    await validator.start();
    cleanup.push(() => validator.close());

    const run = Date.now().toString(36);
    const tasks = (opts.short ? shortDemoTasks(params) : demoTasks(params)).map((t, i) => ({
      ...t,
      taskId: `${run}-${String(i + 1).padStart(2, '0')}`,
    }));
    const outcomes: TaskOutcome[] = [];
    for (const task of tasks) {
      const o = await validator.offer(task);
      say(`  ${o.accepted ? 'accepted' : 'declined'}: ${o.reason}`);
      outcomes.push(o);
      // A started job holds its pool's place once it has asked for a slot (after fetching its data):
      // offers a few seconds apart, as a validator's task cycle makes them.
      if (o.accepted) await new Promise((r) => setTimeout(r, 4000));
    }
    say(`waiting for ${outcomes.filter((o) => o.accepted).length} submissions`);
    await validator.collect(outcomes);

    const withJobs = await Promise.all(
      outcomes.map(async (o) => ({
        ...o,
        job: o.accepted
          ? await client.workflow
              .getHandle(jobWorkflowId(o.task.taskId))
              .result()
              .then(
                (r) => r as TrainingJobResult,
                () => null,
              )
          : null,
      })),
    );
    return {
      outcomes: withJobs,
      failed: outcomes.filter((o) => o.accepted && (o.failure !== null || o.score === null)),
      seconds: Math.round((Date.now() - t0) / 1000),
    };
  } finally {
    for (const stop of cleanup.reverse()) await stop().catch((err: Error) => log.warn({ err }, 'stopping'));
  }
}

/**
 * A pool's gpu worker (workers/gpu.ts --pool) as its own process: training blocks its thread for
 * each step, and in this process it would hold up the service's answers past the validator's 3 s.
 */
function spawnPoolWorker(settings: Settings, pool: string, logFile: string): ChildProcess {
  const out = openSync(logFile, 'a');
  return spawn(
    process.execPath,
    ['--require', require.resolve('tsx/cjs'), path.join(__dirname, '..', 'workers', 'gpu.ts'), '--pool', pool],
    {
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: settings.temporal.address,
        TEMPORAL_NAMESPACE: settings.temporal.namespace,
        MINERFLOW_DATA_DIR: settings.dataDir,
        MINERFLOW_DATA_ROOTS: settings.dataRoots.join(path.delimiter),
        MINERFLOW_STORE: settings.store,
        HF_ENDPOINT: settings.hub.endpoint,
        HF_TOKEN: settings.hub.token,
        MINERFLOW_METRICS_PORT: 'off',
        MINERFLOW_LOG_LEVEL: process.env.MINERFLOW_LOG_LEVEL ?? 'warn',
      },
      stdio: ['ignore', out, out],
    },
  );
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Pre-trains each base on Brown (its share of `seconds`) unless the data folder has it, and publishes it. */
async function publishBases(
  settings: Settings,
  home: string,
  seconds: number,
  say: (l: string) => void,
): Promise<Record<string, number>> {
  const hub = openHub(settings.hub);
  const params: Record<string, number> = {};
  let tokens: Uint8Array | undefined;
  for (const b of DEMO_BASES) {
    const dir = path.join(home, 'bases', ...b.repo.split('/'));
    const done = await fs.access(path.join(dir, MANIFEST_FILE)).then(
      () => true,
      () => false,
    );
    const weights = initWeights(b.cfg, 0);
    params[b.repo] = parameterCount(weights);
    if (done) {
      say(`base ${b.repo} (${params[b.repo]} parameters): reused from ${dir}`);
    } else {
      if (!tokens) {
        const brown = await exportBrown(path.join(home, 'corpora'));
        const files = (await fs.readdir(brown)).filter((f) => f.endsWith('.txt')).sort();
        tokens = new ByteTokenizer().encodeDocuments(
          await Promise.all(files.map((f) => fs.readFile(path.join(brown, f), 'utf8'))),
        );
      }
      const trainer = new Trainer(
        b.cfg,
        weights,
        {
          steps: 100_000,
          batchSize: 8,
          learningRate: 3e-3,
          warmupSteps: 20,
          weightDecay: 0.1,
          gradClip: 1,
          beta1: 0.9,
          beta2: 0.95,
          seed: 0,
        },
        tokens,
      );
      const r = await trainer.run({ stopAt: Date.now() + seconds * b.share * 1000 });
      trainer.dispose();
      await saveBaseModel(dir, weights, b.cfg, new ByteTokenizer());
      say(
        `base ${b.repo} (${params[b.repo]} parameters): pre-trained ${r.steps} steps on Brown in ${Math.round(r.seconds)} s, loss ${r.finalLoss.toFixed(3)}`,
      );
    }
    disposeWeights(weights);
    await hub.upload(
      b.repo,
      [WEIGHTS_FILE, TOKENIZER_FILE, MANIFEST_FILE].map((f) => ({ path: f, file: path.join(dir, f) })),
      'minerflow demo base model',
    );
  }
  return params;
}

const clock = (ms: number) => {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

const fmtLoss = (o: TaskOutcome) =>
  o.score
    ? `${o.score.before.toFixed(3)} → ${o.score.after.toFixed(3)}${o.score.preferenceAccuracy === undefined ? '' : ` (acc ${o.score.preferenceAccuracy.toFixed(2)})`}`
    : '';

/** The summary table: one row per task. */
export function summaryTable(report: DemoReport): string {
  const rows = report.outcomes.map((o) => [
    o.task.taskId,
    o.task.taskType,
    o.task.model.split('/').pop()!,
    o.accepted ? 'accepted' : 'declined',
    o.job?.pool ?? '',
    o.submittedAt && o.deadline
      ? `${clock(o.submittedAt - o.startedAt!)} of ${clock(o.deadline - o.startedAt!)}`
      : o.accepted
        ? (o.failure ?? 'not delivered')
        : '',
    fmtLoss(o),
    o.accepted ? (o.job ? `step ${o.job.steps} (best held-out)` : '') : o.reason.slice(0, 110),
  ]);
  const head = [
    'job',
    'task type',
    'model',
    'decision',
    'pool',
    'finished / deadline',
    'test loss before → after',
    'submitted / reason (in full above)',
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** `minerflow gradients demo [--short] [--pretrain-seconds N]`. */
export async function gradientsDemo(getSettings: () => Settings, args: string[]): Promise<void> {
  const { values } = parseCommand('gradients demo', args, {
    short: { type: 'boolean' },
    'pretrain-seconds': { type: 'string' },
  });
  if (!process.env.MINERFLOW_LOG_LEVEL) logger.level = log.level = 'warn';
  Runtime.install({ logger: sdkLogger(logger.child({ module: 'temporal' })) });
  const report = await runGradientsDemo(getSettings(), {
    short: values.short === true,
    pretrainSeconds: intFlag('pretrain-seconds', values['pretrain-seconds'], 1, 3600),
  });
  console.log(`\n${summaryTable(report)}\n`);
  const accepted = report.outcomes.filter((o) => o.accepted).length;
  console.log(
    `minerflow gradients demo: ${report.outcomes.length} offers, ${accepted} accepted, ${accepted - report.failed.length} delivered in time and scored; ${report.seconds} s in all.`,
  );
  if (report.failed.length > 0) {
    for (const o of report.failed) console.log(`  not delivered: ${o.task.taskId}: ${o.failure}`);
    process.exitCode = 1;
  }
}
