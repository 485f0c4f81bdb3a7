// The engine held equal: the same PyTorch miner (miners/torch, Connito's train.py interface), once
// driven by a real miningCycle through the `command` trainer (curation, LR range test, segments
// with best-checkpoint choice and backtracking on one kept-alive process, the better of raw and
// averaged weights, the deadline), once run plainly on the raw corpus
// for the same wall clock (its config's LR, stopped with SIGINT when the time is up, its last
// checkpoint). Both scored by the same evaluator (miners/torch/evaluate.py, the validator's
// computation) on clean in-domain text neither saw. Lower loss is better: ratio = reference / ours.
// Also: the supervision's overhead as a share of the window — the CPU time of the supervisor
// processes (from /proc) — and the share of the window spent outside the trainer (process starts,
// evaluations, the LR range test). The worker's own trainer code (line parsing, publishing,
// heartbeats) runs in this process beside Temporal's workers and the devnet: the bench measures
// this process's CPU rate idle before the cycle, and counts what it spends above that in the window.
// (The miner's step speed against the plain run's does not measure it here: the same run's speed
// varies by ±20% from one run to the next on this kind of host.)
//   npm run bench -- deadline-torch [--seconds 120]
import { execFileSync } from 'node:child_process';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/queues';

import { ensureDevServer } from '../infra/dev-server';
import { disconnectAllChains } from '../infra/chain/subtensor';
import { projectRoot } from '../infra/paths';
import { openStore, startLocalDevnet } from '../infra/runtime';
import { loadSettings } from '../infra/settings';
import { connectClient, connectWorker } from '../infra/temporal';

import type { CycleResult } from '../subnets/connito/types';
import { torchMinerTrainer } from '../trainers/command';
import { toYaml } from '../trainers/command/attempt-config';
import { runSupervised } from '../trainers/command/process';
import { EMA_DIR, restoreCheckpoint } from '../trainers/command/states';
import { createControlWorker } from '../workers/control';
import { createGpuWorker } from '../workers/gpu';
import { miningCycle, statusQuery } from '../workflows';
import { buildCorpus as buildDeadlineCorpus } from './deadline';
import { benchLine, note } from './report';
import { torchPython } from './torch';

export const PYTHON = path.join(projectRoot(), '.tools', 'venv-torch', 'bin', 'python');
export const MINER = path.join(projectRoot(), 'miners', 'torch');
export const MODEL = {
  seqLen: 64,
  dModel: 64,
  nLayer: 2,
  nHead: 4,
  tokenizer: 'bytes' as const,
  moe: { experts: 4, topK: 2 },
};
export const TRAINING = { batchSize: 16, learningRate: 3e-3, warmupSteps: 20 };
const EVAL = { maxTokens: 32_768, batchSize: 16 };
const IDLE_SAMPLE_MS = 10_000;

export async function deadlineTorchBench(work: string): Promise<void> {
  const budget = secondsFlag(120);
  torchPython(); // PYTHON: the venv, created on a fresh clone
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'mf-deadline-torch-'));
  const data = await buildCorpus(work, root);
  note(`corpus: ${data.rawDocs} raw documents; held-out: ${data.evalDocs} clean in-domain documents neither run sees`);

  const ours = await runOurs(root, data.corpusDir, data.referenceDir, budget);
  note(
    `ours: window ${ours.windowSeconds.toFixed(1)} s, ${ours.result.segments.length} segments, decisions ${ours.result.decisions.map((d) => d.action).join(',')}, LR ${ours.result.training.learningRate.toExponential(2)}${ours.result.training.lrFind ? ` (LR range test: ${ours.result.training.lrFind.steps} points in ${ours.result.training.lrFind.seconds.toFixed(1)} s)` : ''}, published step ${ours.result.checkpoint.steps} (${ours.result.checkpoint.weights} weights; held-out raw ${ours.result.checkpoint.rawHeldOutLoss.toFixed(4)}, EMA ${ours.result.checkpoint.emaHeldOutLoss?.toFixed(4) ?? '—'})`,
  );
  const reference = await runReference(root, data.rawJsonl, ours.windowSeconds);
  note(
    `reference: ${reference.step} steps in ${ours.windowSeconds.toFixed(1)} s on the raw corpus at LR ${TRAINING.learningRate}`,
  );

  const oursLoss = await heldOutLoss(root, ours.checkpointDir, data.evalJsonl);
  const refLoss = await heldOutLoss(root, reference.checkpointDir, data.evalJsonl);
  for (const [who, loss] of [
    ['ours', oursLoss],
    ['reference', refLoss],
  ] as const)
    if (!Number.isFinite(loss)) throw new Error(`${who}: held-out loss ${loss}; no ratio from a broken run`);
  benchLine('deadline-loss-torch', oursLoss, 'nats', refLoss, 'nats', refLoss / oursLoss);
  const share = (cpuSeconds: number) => `${((100 * cpuSeconds) / ours.windowSeconds).toFixed(2)}%`;
  note(
    `supervision overhead: ${share(ours.supervisorCpuSeconds)} of the window (${ours.supervisorCpuSeconds.toFixed(2)} CPU s of ${ours.supervisorProcesses} supervisor processes in ${ours.windowSeconds.toFixed(1)} s); in the worker process ${share(ours.workerCpuSeconds - ours.idleCpuPerSecond * ours.windowSeconds)} above its idle rate (${ours.workerCpuSeconds.toFixed(2)} CPU s in the window; idle, Temporal's workers and the devnet use ${ours.idleCpuPerSecond.toFixed(3)} CPU s a second); outside the trainer (process starts, evaluations, LR range test): ${((100 * Math.max(0, ours.windowSeconds - ours.trainerSeconds)) / ours.windowSeconds).toFixed(1)}%`,
  );
}

function secondsFlag(fallback: number): number {
  const i = process.argv.indexOf('--seconds');
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!(n >= 30)) throw new Error(`--seconds ${process.argv[i + 1]}: expected a number of seconds ≥ 30`);
  return n;
}

/** The deadline bench's polluted corpus (no binary files: the plain run reads text), also as raw .jsonl. */
export async function buildCorpus(work: string, root: string) {
  const data = await buildDeadlineCorpus(work, root, false);
  const jsonl = (docs: string[]) => docs.map((text) => JSON.stringify({ text })).join('\n') + '\n';
  const rawJsonl = path.join(root, 'raw.jsonl');
  const evalJsonl = path.join(root, 'eval.jsonl');
  await fs.writeFile(rawJsonl, jsonl(data.rawDocs));
  await fs.writeFile(evalJsonl, jsonl(data.evalDocs));
  return { ...data, rawJsonl, evalJsonl, rawDocs: data.rawDocs.length, evalDocs: data.evalDocs.length };
}

async function runOurs(root: string, corpusDir: string, referenceDir: string, budget: number) {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const [port, uiPort] = [await freePort(), await freePort()];
  const settings = loadSettings({
    ...process.env,
    MINERFLOW_DATA_DIR: await fs.mkdtemp(path.join(os.tmpdir(), 'mf-dt-')),
    TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
    MINERFLOW_UI_URL: `http://127.0.0.1:${uiPort}`,
    MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:j',
    MINERFLOW_CHAIN: 'devnet',
    MINERFLOW_DATA_ROOTS: root,
    MINERFLOW_LOCAL_BLOCK_MS: '200',
    MINERFLOW_LOCAL_PHASES:
      'Distribute:1,Train:4,MinerCommit1:75,MinerCommit2:75,Submission:2,Validate:5,Merge:1,ValidatorCommit1:1,ValidatorCommit2:1',
  });
  const input = {
    trainer: {
      // One process for the run: the segments (300 steps) end at its checkpoints, every 100 steps.
      ...torchMinerTrainer({ python: PYTHON, checkpointInterval: 100, keepAlive: { idleSeconds: 15 } }),
      stop: { sigintGraceSeconds: 3, sigtermGraceSeconds: 2 },
    },
    corpus: { path: corpusDir },
    curate: { heldOutFraction: 0.05, domain: { reference: referenceDir, quantile: 0.05 } },
    model: MODEL,
    // emaDecay: the miner also keeps averaged weights, and the checkpoint stage publishes whichever
    // of the two is better on the curated held-out split (0.98: best of 0.95–0.998 over 600–900
    // steps of this model, one seed; the plain run keeps the miner's default, no average).
    training: {
      ...TRAINING,
      steps: 100_000,
      segmentSteps: 300,
      emaDecay: 0.98,
      lrFind: { enabled: true, steps: 60 },
    },
    eval: { maxTokens: 8192 },
    commit: { minTrainSeconds: budget, reserveSeconds: 15, maxRounds: 3 },
    score: { timeoutSeconds: 30, pollSeconds: 1 },
  };
  const server = await ensureDevServer(settings, note);
  const devnet = await startLocalDevnet(settings, { log: () => undefined });
  settings.chain.url = devnet.url;
  const connection = await connectWorker(settings);
  const workers = [await createControlWorker(settings, connection), await createGpuWorker(settings, connection)];
  const running = workers.map((w) => w.run());
  try {
    const client = await connectClient(settings);
    // This process's CPU rate with nothing to do (Temporal's workers polling, the devnet making
    // blocks): what it spends above that in the window is the cycle's own work in the worker.
    // The sampler runs already, so its own cost is in the idle rate too.
    const cpu = sampleCpu();
    const idle = process.cpuUsage();
    await new Promise((r) => setTimeout(r, IDLE_SAMPLE_MS));
    const used = process.cpuUsage(idle);
    const idleCpuPerSecond = (used.user + used.system) / 1e6 / (IDLE_SAMPLE_MS / 1000);
    const handle = await client.workflow.start(miningCycle, {
      taskQueue: TASK_QUEUES.control,
      workflowId: `bench-deadline-torch-${Date.now()}`,
      args: [input],
    });
    note(`ours: miningCycle ${handle.workflowId}`);
    const result: CycleResult = await handle.result();
    const supervisors = cpu.stop();
    const status = await handle.query(statusQuery);
    const events = status.events;
    const windowStart = Date.parse(
      events.find((e) => /(LR range test: \d+ steps| training \d+ steps)/.test(e))!.slice(0, 24),
    );
    const windowSeconds = (status.trainingDeadline! - windowStart) / 1000;
    const store = openStore(settings.store, settings);
    // What was published: the best state's raw weights, or its averaged ones in ema/.
    const bestDir = (await restoreCheckpoint(store, result.training.best, path.join(root, 'ours'))).dir;
    const checkpointDir = result.checkpoint.weights === 'ema' ? path.join(bestDir, EMA_DIR) : bestDir;
    return {
      result,
      windowSeconds,
      checkpointDir,
      trainerSeconds: result.segments.reduce((a, s) => a + s.seconds, 0),
      supervisorCpuSeconds: supervisors.cpuSeconds,
      supervisorProcesses: supervisors.processes,
      workerCpuSeconds: supervisors.processCpuSeconds(windowStart, status.trainingDeadline!),
      idleCpuPerSecond,
    };
  } finally {
    for (const w of workers) w.shutdown();
    await Promise.allSettled(running);
    await connection.close();
    await server.stop();
    await disconnectAllChains();
    await devnet.close();
  }
}

/**
 * CPU seconds of every supervisor process (supervisor.sh and its watcher), sampled from /proc every
 * 200 ms (they come and go with each command), and of this process (the workers) between two times.
 */
function sampleCpu(): {
  stop(): { cpuSeconds: number; processes: number; processCpuSeconds(from: number, to: number): number };
} {
  const last = new Map<number, number>();
  const own: { at: number; seconds: number }[] = [];
  const tick = 100; // USER_HZ: clock ticks per second in /proc/<pid>/stat on Linux
  const sample = () => {
    const u = process.cpuUsage();
    own.push({ at: Date.now(), seconds: (u.user + u.system) / 1e6 });
    // /proc itself, not `ps`: a child process every 200 ms would cost this process the CPU it measures.
    for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      try {
        if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('supervisor.sh')) continue;
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        last.set(Number(pid), (Number(f[11]) + Number(f[12])) / tick);
      } catch {
        // gone between the listing and the read
      }
    }
  };
  sample();
  const timer = setInterval(sample, 200);
  return {
    stop() {
      clearInterval(timer);
      sample();
      // The samples that enclose [from, to]: the last one at or before `from`, the first at or after `to`.
      const processCpuSeconds = (from: number, to: number) => {
        const start = own.filter((s) => s.at <= from).at(-1) ?? own[0];
        const end = own.find((s) => s.at >= to) ?? own.at(-1)!;
        return end.seconds - start.seconds;
      };
      return { cpuSeconds: [...last.values()].reduce((a, b) => a + b, 0), processes: last.size, processCpuSeconds };
    },
  };
}

/**
 * The miner's YAML config for a plain run on `trainFile`: the bench's model and training at the
 * config's LR, checkpoints every `checkpointInterval` steps; optionally averaged weights and a step limit.
 */
export function plainMinerConfig(
  trainFile: string,
  checkpoints: string,
  o: { checkpointInterval: number; emaDecay?: number; maxSteps?: number },
): string {
  return (
    toYaml({
      model: { d_model: MODEL.dModel, n_layer: MODEL.nLayer, n_head: MODEL.nHead, seed: 0 },
      moe: { num_experts: MODEL.moe.experts, num_experts_per_tok: MODEL.moe.topK, num_worker_groups: 2 },
      opt: { lr: TRAINING.learningRate, ...(o.emaDecay !== undefined && { ema_decay: o.emaDecay }) },
      // A plain miner does not know when it will be stopped: its LR stays near the peak (100k-step horizon).
      sched: { warmup_steps: TRAINING.warmupSteps, total_steps: 100_000 },
      ...(o.maxSteps !== undefined && { train: { max_steps: o.maxSteps } }),
      task: { exp: { data: { batch_size: TRAINING.batchSize, sequence_length: MODEL.seqLen, train_file: trainFile } } },
      ckpt: { checkpoint_path: checkpoints, checkpoint_interval: o.checkpointInterval },
      log: { format: 'jsonl' },
    }) + '\n'
  );
}

/** The same miner, plainly: one run on the raw corpus at the config's LR, SIGINT when the time is up. */
async function runReference(root: string, rawJsonl: string, seconds: number) {
  const dir = path.join(root, 'reference-run');
  const checkpoints = path.join(dir, 'checkpoints');
  await fs.mkdir(checkpoints, { recursive: true });
  const config = path.join(dir, 'config.yaml');
  await fs.writeFile(config, plainMinerConfig(rawJsonl, checkpoints, { checkpointInterval: 1_000_000 }));
  let step = 0;
  const proc = runSupervised({
    argv: [PYTHON, path.join(MINER, 'train.py'), '--path', config],
    env: { OMP_NUM_THREADS: '1' },
    onLine: (line) => {
      const m = /"step": (\d+)/.exec(line);
      if (m) step = Number(m[1]);
    },
  });
  const timer = setTimeout(() => void proc.stop({ sigintGraceMs: 3000, sigtermGraceMs: 2000 }), seconds * 1000);
  await proc.exited;
  clearTimeout(timer);
  const found = (await fs.readdir(checkpoints)).filter((n) => n.startsWith('globalver_')).sort();
  if (!found.length) throw new Error('the reference run wrote no checkpoint');
  return { step, checkpointDir: path.join(checkpoints, found.at(-1)!) };
}

export async function heldOutLoss(root: string, checkpointDir: string, evalJsonl: string): Promise<number> {
  const config = path.join(root, 'eval-config.yaml');
  await fs.writeFile(
    config,
    toYaml({
      model: { d_model: MODEL.dModel, n_layer: MODEL.nLayer, n_head: MODEL.nHead, seed: 0 },
      moe: { num_experts: MODEL.moe.experts, num_experts_per_tok: MODEL.moe.topK },
      task: { exp: { data: { sequence_length: MODEL.seqLen } } },
    }) + '\n',
  );
  const out = execFileSync(
    PYTHON,
    [
      path.join(MINER, 'evaluate.py'),
      '--path',
      config,
      '--checkpoint',
      checkpointDir,
      '--heldout',
      evalJsonl,
      '--max-tokens',
      String(EVAL.maxTokens),
    ],
    { encoding: 'utf8' },
  );
  return (JSON.parse(out.trim().split('\n').at(-1)!) as { loss: number }).loss;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
