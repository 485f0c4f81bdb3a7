// The `minerflow` command: the one entry point for people. Each command is a small function.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { parseOrExplain } from '../common/config';
import { CycleInputSchema } from '../subnets/connito/config';
import { TASK_QUEUES } from '../common/queues';
import type { CycleResult, CycleStatus } from '../subnets/connito/types';
import { curate, formatReport, nonZero, readSplit } from '../curation/curate';
import { initBackend } from '../model/backend';
import { lrRangeTest } from '../model/lr-finder';
import { trainTokenizer } from '../model/tokenizer';
import { modelConfig } from '../trainers/tfjs';
import { ensureDevServer } from '../infra/dev-server';
import { curationPlan, openStore, startLocalDevnet } from '../infra/runtime';
import { disconnectAllChains } from '../infra/chain/subtensor';
import { createCycleSchedule } from '../infra/schedules';
import { loadSettings, type Settings } from '../infra/settings';
import { connectClient, connectWorker, workflowUrl } from '../infra/temporal';
import { createHotkey } from '../infra/wallet';
import type { TrainProgress } from '../trainers/trainer';
import { createControlWorker } from '../workers/control';
import { createGpuWorker } from '../workers/gpu';
import { extendTrainingUpdate, loopStatusQuery, minerLoop, miningCycle, pauseSignal, resumeSignal, statusQuery, stopLoopSignal, stopTrainingSignal } from '../workflows';
import { fmt } from '../workflows/training-state';
import { asciiPlot } from './plot';

const USAGE = `minerflow — durable mining cycles for Bittensor training subnets

  minerflow demo                              one complete cycle on the embedded defaults
  minerflow dev                               Temporal dev server (Web UI :8233) + devnet + both workers
  minerflow devnet [--port N]                 the local devnet alone (subtensor JSON-RPC on ws://127.0.0.1:9944)
  minerflow worker control|gpu                one worker (run them on different hosts)
  minerflow cycle start [--config FILE] [--id ID] [--wait]
  minerflow cycle status <workflowId>          phase, segments, decisions, deadline, loss curve
  minerflow cycle pause|resume|stop <workflowId>
  minerflow cycle extend <workflowId> --steps N | --seconds S
  minerflow schedule create --cron "<expr>" [--config FILE] [--id ID]
  minerflow schedule list | delete <id> | pause <id> | unpause <id>
  minerflow miner start [--config FILE] [--cycles N] [--id ID]   cycles back to back (minerLoop)
  minerflow miner status|stop <id>
  minerflow curate [--config FILE] [--corpus PATH] [--report]   curation alone (reuses an unchanged result)
  minerflow lr-find [--config FILE] [--steps N]  LR range test on the cycle's data and model
  minerflow wallet create [--wallet NAME] [--hotkey NAME]

Settings come from the environment (TEMPORAL_ADDRESS, MINERFLOW_DATA_DIR, …): see README.md.`;

async function main(argv: string[]): Promise<void> {
  const [cmd, sub, ...rest] = argv;
  const flags = parseFlags([sub, ...rest].filter((x): x is string => x !== undefined));
  const settings = loadSettings();
  switch (cmd) {
    case 'demo':
      return demo(settings);
    case 'dev':
      return dev(settings);
    case 'devnet':
      return devnetCommand(settings, flags);
    case 'worker':
      return worker(settings, sub);
    case 'cycle':
      if (sub === 'start') return cycleStart(settings, flags);
      if (sub === 'status') return cycleStatus(settings, flags._[1]);
      if (sub === 'pause' || sub === 'resume' || sub === 'stop') return cycleSignal(settings, sub, flags._[1]);
      if (sub === 'extend') return cycleExtend(settings, flags);
      throw new UsageError(`unknown 'cycle' command '${sub ?? ''}'`);
    case 'schedule':
      return scheduleCommand(settings, sub, flags);
    case 'miner':
      return minerCommand(settings, sub, flags);
    case 'lr-find':
      return lrFindCommand(settings, flags);
    case 'curate':
      return curateCommand(settings, flags);
    case 'wallet':
      if (sub === 'create') {
        const r = await createHotkey(settings.walletsDir, str(flags.wallet) ?? 'default', str(flags.hotkey) ?? 'default');
        console.log(`created hotkey ${r.address} in ${r.file}`);
        return;
      }
      throw new UsageError(`unknown 'wallet' command '${sub ?? ''}'`);
    case undefined:
    case 'help':
    case '--help':
      console.log(USAGE);
      return;
    default:
      throw new UsageError(`unknown command '${cmd}'`);
  }
}

/** Dev server (if none is running), both workers in this process, one cycle, the result, then stop. */
async function demo(baseSettings: Settings): Promise<void> {
  quietSdkLogs(); // the progress bar tells the story; warnings still show
  const { settings, stopDevnet } = await withDevnet(baseSettings, 0);
  const server = await ensureDevServer(settings);
  const connection = await connectWorker(settings);
  const workers = [await createControlWorker(settings, connection), await createGpuWorker(settings, connection)];
  const running = workers.map((w) => w.run());
  try {
    const client = await connectClient(settings);
    const handle = await startCycle(client, {}, undefined);
    printStarted(settings, handle);
    const result = await watchCycle(handle);
    printResult(settings, result);
    if (server.started) {
      console.log(`\n$ temporal workflow list   (against the dev server, before it stops)`);
      spawnSync(settings.temporal.bin, ['workflow', 'list', '--address', settings.temporal.address, '--namespace', settings.temporal.namespace, '--limit', '5'], { stdio: 'inherit' });
      console.log(`\nThe dev server stops with the demo; its history stays in ${path.join(settings.dataDir, 'temporal.db')}.`);
      console.log(`Run \`npx minerflow dev\` to bring it back with the Web UI at ${settings.temporal.uiUrl}.`);
    }
  } finally {
    for (const w of workers) w.shutdown();
    await Promise.allSettled(running);
    await connection.close();
    await server.stop();
    await stopDevnet();
  }
}

async function dev(baseSettings: Settings): Promise<void> {
  // The configured devnet port when it is free, so workers started elsewhere on this host find it.
  const { settings, stopDevnet } = await withDevnet(baseSettings, Number(new URL(baseSettings.chain.url).port) || 9944).catch(() => withDevnet(baseSettings, 0));
  const server = await ensureDevServer(settings);
  const connection = await connectWorker(settings);
  const workers = [await createControlWorker(settings, connection), await createGpuWorker(settings, connection)];
  console.log(`minerflow: workers on '${TASK_QUEUES.control}' and '${TASK_QUEUES.gpu}'. Start a cycle from the Web UI (workflow type miningCycle, task queue ${TASK_QUEUES.control}, input {}) or with \`npx minerflow cycle start\`. Ctrl-C stops.`);
  const stop = () => workers.forEach((w) => w.shutdown());
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await Promise.allSettled(workers.map((w) => w.run()));
  await connection.close();
  await server.stop();
  await stopDevnet();
}

/** With the devnet chain (the default), starts one in this process on loopback and points the settings at it. */
async function withDevnet(settings: Settings, port: number): Promise<{ settings: Settings; stopDevnet: () => Promise<void> }> {
  if (settings.chain.kind !== 'devnet') return { settings, stopDevnet: () => disconnectAllChains() };
  const devnet = await startLocalDevnet(settings, { port });
  console.log(`minerflow: devnet (subtensor JSON-RPC, finney metadata) at ${devnet.url}; other workers reach it with MINERFLOW_DEVNET_URL=${devnet.url}`);
  return {
    settings: { ...settings, chain: { ...settings.chain, url: devnet.url } },
    stopDevnet: async () => {
      await disconnectAllChains();
      await devnet.close();
    },
  };
}

/** `minerflow devnet`: the devnet alone, in the foreground, until Ctrl-C. */
async function devnetCommand(settings: Settings, flags: Flags): Promise<void> {
  const port = Number(str(flags.port) ?? (new URL(settings.chain.url).port || 9944));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port '${String(flags.port)}' must be a port number`);
  const devnet = await startLocalDevnet(settings, { port });
  const { blockMs, phases, register } = settings.chain.local;
  console.log(`minerflow devnet: ${devnet.url}`);
  console.log(`  ${blockMs} ms blocks; phases ${phases.map((p) => `${p.name}:${p.blocks}`).join(',')}`);
  console.log(`  registered: ${register.map((r) => `${r.wallet}/${r.hotkey}@${r.netuid}`).join(', ') || 'none'} (wallets in ${settings.walletsDir})`);
  console.log(`  workers: MINERFLOW_CHAIN=devnet MINERFLOW_DEVNET_URL=${devnet.url}. Ctrl-C stops (the devnet keeps no state).`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await devnet.close();
}

async function worker(settings: Settings, which: string | undefined): Promise<void> {
  if (which !== 'control' && which !== 'gpu') throw new UsageError(`'worker' takes 'control' or 'gpu', not '${which ?? ''}'`);
  const connection = await connectWorker(settings);
  const w = which === 'control' ? await createControlWorker(settings, connection) : await createGpuWorker(settings, connection);
  console.log(`minerflow: ${which} worker polling '${TASK_QUEUES[which]}' on ${settings.temporal.address}`);
  await w.run(); // the SDK shuts down gracefully on SIGINT/SIGTERM
  await connection.close();
}

async function cycleStart(settings: Settings, flags: Flags): Promise<void> {
  const file = str(flags.config);
  const input: unknown = file ? JSON.parse(await fs.readFile(file, 'utf8')) : {};
  parseOrExplain(CycleInputSchema, input, `cycle config${file ? ` ${file}` : ''}`); // fail here, before anything starts
  const client = await connectClient(settings);
  const handle = await startCycle(client, input, str(flags.id));
  printStarted(settings, handle);
  if (flags.wait) printResult(settings, await watchCycle(handle));
}

async function cycleStatus(settings: Settings, id: string | undefined): Promise<void> {
  if (!id) throw new UsageError('cycle status needs a workflow id');
  const client = await connectClient(settings);
  const handle = client.workflow.getHandle(id);
  const desc = await handle.describe();
  console.log(`${id}: ${desc.status.name}  ${workflowUrl(settings, id)}`);
  const status = await handle.query(statusQuery).catch(() => undefined);
  if (status) printStatus(status);
  else console.log('(no worker answered the status query; start a control worker to see the cycle state)');
  const progress = trainProgress(desc.raw.pendingActivities ?? []);
  if (progress) console.log(progressLine(progress));
  const metrics = status ? await readMetrics(settings, status.segments.map((s) => s.metricsKey)) : [];
  if (metrics.length > 1) {
    console.log('\ntraining loss by step (all segments, backtracks included)');
    console.log(asciiPlot(metrics, { label: `${metrics.length} steps` }));
  }
}

async function cycleSignal(settings: Settings, which: 'pause' | 'resume' | 'stop', id: string | undefined): Promise<void> {
  if (!id) throw new UsageError(`cycle ${which} needs a workflow id`);
  const handle = (await connectClient(settings)).workflow.getHandle(id);
  await handle.signal(which === 'pause' ? pauseSignal : which === 'resume' ? resumeSignal : stopTrainingSignal);
  console.log(`sent ${which} to ${id}`);
}

async function cycleExtend(settings: Settings, flags: Flags): Promise<void> {
  const id = flags._[1];
  const steps = flags.steps !== undefined ? Number(flags.steps) : undefined;
  const seconds = flags.seconds !== undefined ? Number(flags.seconds) : undefined;
  if (!id || (steps === undefined) === (seconds === undefined)) throw new UsageError('cycle extend needs a workflow id and one of --steps N or --seconds S');
  const handle = (await connectClient(settings)).workflow.getHandle(id);
  const r = await handle.executeUpdate(extendTrainingUpdate, { args: [steps !== undefined ? { steps } : { seconds }] });
  console.log(`${id}: training now plans ${r.plannedSteps} steps`);
}

async function lrFindCommand(settings: Settings, flags: Flags): Promise<void> {
  const file = str(flags.config);
  const cycle = parseOrExplain(CycleInputSchema, file ? JSON.parse(await fs.readFile(file, 'utf8')) : {}, `cycle config${file ? ` ${file}` : ''}`);
  const plan = await curationPlan(cycle.corpus, cycle.curate, settings.dataDir);
  const ds = await curate(plan.source, path.join(settings.dataDir, 'datasets'), plan.opts);
  await initBackend(cycle.model.backend);
  const t = cycle.training;
  const texts = await readSplit(path.join(ds.dir, 'train.jsonl'));
  const tokenizer = trainTokenizer(cycle.model, texts); // the one a fresh cycle's training would use
  const r = await lrRangeTest(modelConfig(cycle.model, tokenizer), tokenizer.encodeDocuments(texts), {
    minLr: 1e-6, maxLr: 1, steps: flags.steps !== undefined ? Number(flags.steps) : 200, horizonSteps: t.steps, batchSize: t.batchSize, seed: t.seed, modelSeed: cycle.model.seed,
    weightDecay: t.weightDecay, gradClip: t.gradClip, beta1: t.beta1, beta2: t.beta2,
  });
  console.log(`smoothed loss while the LR grows from ${r.curve[0].lr.toExponential(1)} to ${r.curve.at(-1)!.lr.toExponential(1)}${r.diverged ? ' (stopped: diverged)' : ''}`);
  console.log(asciiPlot(r.curve.map((p) => p.smoothed), { label: 'log LR →' }));
  console.log(`suggested training.learningRate for ${t.steps} steps: ${r.suggestedLr.toExponential(2)} (lowest loss at ${r.minLossLr.toExponential(2)}, steepest descent at ${r.steepestLr.toExponential(2)})`);
}

async function minerCommand(settings: Settings, sub: string | undefined, flags: Flags): Promise<void> {
  const client = await connectClient(settings);
  if (sub === 'start') {
    const file = str(flags.config);
    const cycle = (file ? JSON.parse(await fs.readFile(file, 'utf8')) : {}) as Record<string, unknown>;
    parseOrExplain(CycleInputSchema, cycle, `cycle config${file ? ` ${file}` : ''}`);
    const workflowId = str(flags.id) ?? `miner-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const cycles = flags.cycles !== undefined ? Number(flags.cycles) : null;
    await client.workflow.start(minerLoop, { taskQueue: TASK_QUEUES.control, workflowId, args: [{ cycle, cycles }] });
    console.log(`minerflow: started minerLoop ${workflowId} (${cycles ?? 'unlimited'} cycles)\n           ${workflowUrl(settings, workflowId)}`);
    return;
  }
  const id = flags._[1];
  if (!id) throw new UsageError(`miner ${sub ?? ''} needs a workflow id`);
  const handle = client.workflow.getHandle(id);
  if (sub === 'stop') {
    await handle.signal(stopLoopSignal);
    console.log(`${id}: will stop after the running cycle`);
  } else if (sub === 'status') {
    const s = await handle.query(loopStatusQuery);
    console.log(`${id}: ${s.completed} cycles${s.stopping ? ' (stopping)' : ''}; best ${s.best ? `${s.best.hash} held-out ${s.best.heldOutLoss.toFixed(4)} (cycle ${s.best.cycle})` : '-'}`);
    for (const c of s.scores) console.log(`  cycle ${c.cycle} round ${c.round}: ${c.status}${c.heldOutLoss !== undefined ? ` held-out ${c.heldOutLoss.toFixed(4)}` : ''}${c.incentiveShare !== undefined ? ` share ${c.incentiveShare.toFixed(4)}` : ''}${c.error ? ` — ${c.error}` : ''}`);
  } else throw new UsageError(`unknown 'miner' command '${sub ?? ''}'`);
}

async function scheduleCommand(settings: Settings, sub: string | undefined, flags: Flags): Promise<void> {
  const client = await connectClient(settings);
  const id = flags._[1];
  switch (sub) {
    case 'create': {
      const cron = str(flags.cron);
      if (!cron) throw new UsageError('schedule create needs --cron "<expr>" (e.g. "0 */2 * * *")');
      const file = str(flags.config);
      const input: unknown = file ? JSON.parse(await fs.readFile(file, 'utf8')) : {};
      parseOrExplain(CycleInputSchema, input, `cycle config${file ? ` ${file}` : ''}`);
      const scheduleId = str(flags.id) ?? `minerflow-${Date.now()}`;
      await createCycleSchedule(client, { scheduleId, cron, input });
      console.log(`schedule ${scheduleId} created: miningCycle at "${cron}", overlap policy skip`);
      return;
    }
    case 'list':
      for await (const s of client.schedule.list()) {
        const d = await client.schedule.getHandle(s.scheduleId).describe();
        const when = (d.spec.calendars ?? []).map((c) => c.comment || JSON.stringify(c)).join(' | ');
        console.log(`${s.scheduleId}  ${when}  overlap ${d.policies.overlap}  ${d.state.paused ? 'paused' : 'active'}  next ${d.info.nextActionTimes[0]?.toISOString() ?? '-'}`);
      }
      return;
    case 'delete':
    case 'pause':
    case 'unpause': {
      if (!id) throw new UsageError(`schedule ${sub} needs a schedule id`);
      const h = client.schedule.getHandle(id);
      if (sub === 'delete') await h.delete();
      else if (sub === 'pause') await h.pause('paused from the minerflow CLI');
      else await h.unpause('unpaused from the minerflow CLI');
      console.log(`schedule ${id}: ${sub}d`);
      return;
    }
    default:
      throw new UsageError(`unknown 'schedule' command '${sub ?? ''}'`);
  }
}

async function curateCommand(settings: Settings, flags: Flags): Promise<void> {
  const file = str(flags.config);
  const cycle = parseOrExplain(CycleInputSchema, file ? JSON.parse(await fs.readFile(file, 'utf8')) : {}, `cycle config${file ? ` ${file}` : ''}`);
  const corpus = { ...cycle.corpus, ...(str(flags.corpus) ? { path: str(flags.corpus)! } : {}) };
  const plan = await curationPlan(corpus, cycle.curate, settings.dataDir);
  const ds = await curate(plan.source, path.resolve(str(flags.out) ?? path.join(settings.dataDir, 'datasets')), plan.opts);
  if (flags.report) console.log(formatReport(ds.report, ds.id));
  else console.log(`dataset ${ds.id}: ${ds.report.train.documents} train + ${ds.report.heldOut.documents} held-out documents, dropped ${JSON.stringify(nonZero(ds.report.dropped))}`);
  console.log(`${ds.reused ? 'reused (input unchanged)' : 'written'}: ${ds.dir}`);
}

function quietSdkLogs(): void {
  Runtime.install({ logger: new DefaultLogger('WARN') });
}

function startCycle(client: Client, input: unknown, id: string | undefined): Promise<WorkflowHandle<typeof miningCycle>> {
  const workflowId = id ?? `cycle-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  return client.workflow.start(miningCycle, { taskQueue: TASK_QUEUES.control, workflowId, args: [input] });
}

function printStarted(settings: Settings, handle: WorkflowHandle): void {
  console.log(`minerflow: started miningCycle ${handle.workflowId}`);
  console.log(`           ${workflowUrl(settings, handle.workflowId)}`);
}

/** Follows a cycle to its end: phase changes, and a progress bar while it trains. */
async function watchCycle(handle: WorkflowHandle<typeof miningCycle>): Promise<CycleResult> {
  const tty = process.stdout.isTTY;
  let lastPhase = '';
  let lastDecile = -1;
  const done = handle.result();
  let finished = false;
  void done.then(() => (finished = true), () => (finished = true));
  while (!finished) {
    const [status, desc] = await Promise.all([handle.query(statusQuery).catch(() => undefined), handle.describe().catch(() => undefined)]);
    if (status && status.phase !== lastPhase) {
      if (tty) process.stdout.write('\n');
      console.log(`[${status.phase}] ${status.events.at(-1)?.replace(/^\S+ /, '') ?? ''}`);
      lastPhase = status.phase;
    }
    const p = desc && trainProgress(desc.raw.pendingActivities ?? []);
    if (p) {
      if (tty) process.stdout.write(`\r${progressLine(p)}   `);
      else if (Math.floor((10 * p.step) / p.totalSteps) !== lastDecile) {
        lastDecile = Math.floor((10 * p.step) / p.totalSteps);
        console.log(progressLine(p));
      }
    }
    await Promise.race([done.catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  }
  if (tty) process.stdout.write('\n');
  return done;
}

function trainProgress(pending: { activityType?: { name?: string | null } | null; heartbeatDetails?: { payloads?: unknown[] | null } | null }[]): TrainProgress | undefined {
  const a = pending.find((x) => x.activityType?.name === 'trainSegment');
  const payload = a?.heartbeatDetails?.payloads?.[0];
  if (!payload) return undefined;
  const d = defaultPayloadConverter.fromPayload(payload as never) as TrainProgress;
  return d.stage === 'training' ? d : undefined;
}

function progressLine(p: TrainProgress): string {
  const width = 30;
  const filled = Math.round((width * p.step) / p.totalSteps);
  return `train segment ${p.segment} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(3)} lr ${p.lr.toExponential(1)} ${Math.round(p.tokensPerSec)} tok/s`;
}

function printStatus(s: CycleStatus): void {
  console.log(`phase: ${s.phase}${s.paused ? ' (paused)' : ''}   step ${s.stepsDone}/${s.plannedSteps}${s.round !== undefined ? `   round ${s.round}` : ''}`);
  if (s.trainingDeadline) console.log(`training deadline: ${new Date(s.trainingDeadline).toISOString()} (commit 1 opens ${s.plan ? new Date(s.plan.commit1.opensAt).toISOString() : '?'})`);
  for (const g of s.segments) console.log(`  segment ${g.segment}${g.attempt > 1 ? ` (attempt ${g.attempt})` : ''}: steps ${g.startStep}→${g.endStep}  train ${fmt(g.trainLoss)}  held-out ${fmt(g.heldOutLoss)}  ${Math.round(g.tokensPerSec)} tok/s`);
  for (const d of s.decisions) console.log(`  after segment ${d.afterSegment}: ${d.action} — ${d.reason}`);
  if (s.best) console.log(`best: step ${s.best.step}, held-out ${fmt(s.best.heldOutLoss)} (${s.best.key})`);
  if (s.checkpoint) console.log(`checkpoint: ${s.checkpoint.hash} held-out loss ${fmt(s.checkpoint.heldOutLoss)} (untrained ${fmt(s.checkpoint.baselineLoss)})`);
  for (const m of s.missedWindows) console.log(`MISSED: ${m}`);
  if (s.score) console.log(`score: ${JSON.stringify(s.score)}`);
  console.log('events:');
  for (const e of s.events) console.log(`  ${e}`);
}

function printResult(settings: Settings, r: CycleResult): void {
  const s = r.score;
  console.log('\nminerflow: cycle complete');
  console.log(`  dataset         ${r.dataset.id}: ${r.dataset.trainDocuments} train / ${r.dataset.heldOutDocuments} held-out documents, dropped ${JSON.stringify(r.dataset.dropped)}`);
  console.log(`  training        best at step ${r.training.steps} of ${r.training.plannedSteps} planned (${r.training.segments} segments, ${r.training.stepsRun} steps run), ${Math.round(r.training.tokensPerSec)} tok/s on ${r.training.backend}, train loss ${r.training.trainLoss.toFixed(4)}`);
  for (const d of r.decisions.filter((x) => x.action !== 'continue')) console.log(`  decision        after segment ${d.afterSegment}: ${d.action} — ${d.reason}`);
  for (const m of r.missedWindows) console.log(`  MISSED          ${m}`);
  const ema = r.checkpoint.emaHeldOutLoss !== undefined ? `; raw ${fmt(r.checkpoint.rawHeldOutLoss)}, EMA ${fmt(r.checkpoint.emaHeldOutLoss)}` : '';
  console.log(`  held-out loss   ${fmt(r.checkpoint.heldOutLoss)} nats/token = ${r.checkpoint.heldOutBitsPerByte?.toFixed(3)} bits/byte (${r.checkpoint.tokenizer} ${r.checkpoint.vocabSize}), ${r.checkpoint.weights} weights (untrained model: ${fmt(r.checkpoint.baselineLoss)}${ema})`);
  console.log(`  checkpoint      ${r.checkpoint.hash} in ${r.checkpoint.location}/${r.checkpoint.key}`);
  console.log(`  commits         ${r.commits.map((c) => `${c.phase}@block ${c.block} (${c.bytes} B)`).join(', ')}`);
  if (s.status === 'scored') {
    console.log(`  score           round ${s.round}: validator loss ${s.validatorLoss?.toFixed(4)}, raw score ${s.rawScore?.toFixed(4)}, rank ${s.rank ?? '-'}, reward ${s.reward}, incentive share ${s.incentiveShare?.toFixed(4)}`);
  } else console.log(`  score           ${s.status}: ${s.reason}`);
  console.log(`  Temporal UI     ${workflowUrl(settings, r.workflowId)}`);
}

/** Training loss per step from the segments' metrics files in the store. */
async function readMetrics(settings: Settings, keys: string[]): Promise<number[]> {
  const store = openStore(settings.store);
  const out: number[] = [];
  for (const key of keys) {
    const text = await store.get(key).then((f) => fs.readFile(f, 'utf8'), () => '');
    for (const line of text.split('\n')) if (line) out.push((JSON.parse(line) as { loss: number }).loss);
  }
  return out;
}

type Flags = { _: string[] } & Record<string, string | boolean | string[]>;

function parseFlags(args: string[]): Flags {
  const flags: Flags = { _: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split('=', 2);
      if (v !== undefined) flags[k] = v;
      else if (args[i + 1] !== undefined && !args[i + 1].startsWith('--')) flags[k] = args[++i];
      else flags[k] = true;
    } else flags._.push(a);
  }
  return flags;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

class UsageError extends Error {}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) console.error(`minerflow: ${err.message}\n\n${USAGE}`);
  else console.error(`minerflow: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
