// Equal wall clock, equal data, equal hardware: what does minerflow's whole recipe buy over a
// plain PyTorch script? One after the other (each gets both cores):
//   ours       a real miningCycle on a real Temporal dev server with real workers (the demo's
//              startup path), on the polluted corpus: curation, LR range test, cosine with warmup,
//              EMA choice, backtracking; its training window is the budget (see `chainFor`).
//   reference  bench/python/reference_miner.py: the same GPT in PyTorch on the raw corpus, AdamW
//              3e-4, cosine with warmup, clip 1.0, for the same number of seconds.
// Both are scored by our evaluator (model/evaluate.ts) on clean in-domain text neither saw, from
// their safetensors files. Lower loss is better: ratio = reference / ours.
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { modelConfig, stateTokenizer } from '../trainers/tfjs';
import { CycleInputSchema, type CycleInput } from '../subnets/connito/config';
import { TASK_QUEUES } from '../common/queues';
import type { CycleResult } from '../subnets/connito/types';
import { normalise } from '../curation/clean';
import { ensureDevServer } from '../infra/dev-server';
import { disconnectAllChains } from '../infra/chain/subtensor';
import { openStore, startLocalDevnet } from '../infra/runtime';
import { loadSettings, type Settings } from '../infra/settings';
import { connectClient, connectWorker, workflowUrl } from '../infra/temporal';
import { initBackend } from '../model/backend';
import { loadWeights } from '../model/checkpoint';
import { evaluate, type EvalOptions } from '../model/evaluate';
import { disposeWeights, initWeights, type GptConfig } from '../model/gpt';
import { Rng } from '../model/rng';
import type { TokenIds, Tokenizer } from '../model/tokenizer';
import { Trainer } from '../model/trainer';
import { createControlWorker } from '../workers/control';
import { createGpuWorker } from '../workers/gpu';
import { miningCycle, statusQuery } from '../workflows';
import { brownDocs, junkDoc, nearCopy } from './corpora';
import { lineChartSvg } from './plot-svg';
import { torchPython } from './torch';
import { benchLine, note } from './report';

const EVAL: EvalOptions = { maxTokens: 32_768, batchSize: 16 };
const RESERVE_SECONDS = 15; // checkpoint, hash and sign between the deadline and commit 1
const LR_FIND_STEPS = 80;
const BLOCK_MS = 200;

interface Point {
  seconds: number; // since the training window opened
  tokens: number;
  loss: number;
}

interface ContenderRun {
  points: Point[]; // held-out loss over wall time, by our evaluator
  final: Point; // ours: the published checkpoint; reference: its last checkpoint
  windowSeconds: number;
}

export async function deadlineBench(work: string): Promise<void> {
  const budget = secondsFlag(300);
  // Its own folder outside the shared bench folder: the run takes ~12 minutes at the default budget.
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'mf-deadline-bench-'));
  const data = await buildCorpus(work, root);
  note(
    `corpus: ${data.rawDocs.length} raw documents (in-domain, off-domain genres, near copies, junk, malformed files); held-out: ${data.evalDocs.length} clean in-domain documents neither contender sees`,
  );

  const ours = await runOurs(root, data, budget);
  const tokenizer = ours.tokenizer;
  const cfg = ours.cfg;
  const heldOut = tokenizer.encodeDocuments(data.evalDocs);
  const oursRun = await scoreOurs(ours, cfg, heldOut);
  note(
    `ours: window ${oursRun.windowSeconds.toFixed(1)} s, published checkpoint after ${oursRun.final.tokens} tokens (${ours.result.checkpoint.weights} weights, LR ${ours.result.training.learningRate.toExponential(2)}${ours.result.training.lrFind ? ` from the LR range test, ${ours.result.training.lrFind.steps} steps in ${ours.result.training.lrFind.seconds.toFixed(1)} s` : ''}), ${ours.result.segments.length} segments, decisions ${ours.result.decisions.map((d) => d.action).join(',')}`,
  );

  // The reference gets exactly the wall clock our training window had, on the raw corpus in our tokens.
  const refRun = await runReference(
    root,
    cfg,
    tokenizer,
    tokenizer.encodeDocuments(data.rawDocs),
    oursRun.windowSeconds,
    heldOut,
  );
  note(`reference: ${refRun.final.tokens} tokens in ${refRun.windowSeconds.toFixed(1)} s`);

  for (const [who, r] of [
    ['ours', oursRun],
    ['reference', refRun],
  ] as const) {
    if (!(r.final.tokens > 0) || !Number.isFinite(r.final.loss))
      throw new Error(
        `${who} did not train: ${r.final.tokens} tokens, held-out loss ${r.final.loss}; no ratio from a broken run`,
      );
  }
  const svg = path.join(root, 'deadline-loss.svg');
  await fs.writeFile(
    svg,
    lineChartSvg(
      [
        {
          name: 'minerflow (segments)',
          color: '#1f77b4',
          points: oursRun.points.map((p) => ({ x: p.seconds, y: p.loss })),
        },
        {
          name: 'minerflow (published)',
          color: '#d62728',
          points: [{ x: oursRun.final.seconds, y: oursRun.final.loss }],
        },
        {
          name: 'reference (PyTorch)',
          color: '#ff7f0e',
          points: refRun.points.map((p) => ({ x: p.seconds, y: p.loss })),
        },
      ],
      {
        title: `held-out loss vs wall time (${data.evalDocs.length} clean in-domain docs, our evaluator)`,
        xLabel: 'seconds since the training window opened',
        yLabel: 'held-out loss (nats/token)',
      },
    ),
  );
  const kept = path.join(work, 'deadline-loss.svg');
  await fs.mkdir(work, { recursive: true });
  await fs.copyFile(svg, kept);
  note(`plot: ${kept} (run folder ${root})`);

  benchLine(
    'deadline-loss',
    oursRun.final.loss,
    'nats',
    refRun.final.loss,
    'nats',
    refRun.final.loss / oursRun.final.loss,
  );
  // Equal tokens: the reference's checkpoint nearest to the tokens our published model trained on
  // or, when ours trained on more than the reference managed, our state nearest to the reference's total.
  const nearest = (points: Point[], tokens: number) =>
    points.reduce((b, p) => (Math.abs(p.tokens - tokens) < Math.abs(b.tokens - tokens) ? p : b));
  const oursMore = oursRun.final.tokens > refRun.final.tokens;
  const [oursAt, refAt] = oursMore
    ? [nearest(oursRun.points, refRun.final.tokens), refRun.final]
    : [oursRun.final, nearest(refRun.points, oursRun.final.tokens)];
  note(
    oursMore
      ? `equal tokens: ours trained on more tokens (${oursRun.final.tokens}) than the reference did (${refRun.final.tokens}): our segment state at ${oursAt.tokens} tokens (${oursAt.seconds.toFixed(1)} s, raw weights, mid-schedule) against the reference's last checkpoint`
      : `equal tokens: the reference's checkpoint at ${refAt.tokens} tokens (${refAt.seconds.toFixed(1)} s) against our published checkpoint at ${oursAt.tokens}`,
  );
  benchLine('token-budget-loss', oursAt.loss, 'nats', refAt.loss, 'nats', refAt.loss / oursAt.loss);
}

/** --seconds N after the bench name (npm run bench -- deadline --seconds 60). */
function secondsFlag(fallback: number): number {
  const i = process.argv.indexOf('--seconds');
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!(n >= 10)) throw new Error(`--seconds ${process.argv[i + 1]}: expected a number of seconds ≥ 10`);
  return n;
}

// --- The data ------------------------------------------------------------------------------------
export interface BenchData {
  corpusDir: string; // the polluted corpus, one file per document (what ours curates)
  referenceDir: string; // in-domain reference text for the domain filter
  rawDocs: string[]; // the same corpus as the reference reads it: everything, uncurated
  evalDocs: string[]; // clean in-domain held-out documents
}

/**
 * The polluted Brown corpus of the curation-loss bench (genre j in-domain), plus (unless
 * `malformed` is false) binary files a reader that takes only text cannot take.
 */
export async function buildCorpus(work: string, root: string, malformed = true): Promise<BenchData> {
  const rng = new Rng(11);
  const domain = await brownDocs(path.join(work, 'corpora'), 'j');
  for (let i = domain.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [domain[i], domain[j]] = [domain[j], domain[i]];
  }
  const [reference, evalDocs, inDomain] = [domain.slice(0, 20), domain.slice(20, 35), domain.slice(35)];
  const offDomain = await brownDocs(path.join(work, 'corpora'), 'klmnpr');
  const corpusDir = path.join(root, 'corpus');
  const referenceDir = path.join(root, 'reference');
  await fs.mkdir(corpusDir, { recursive: true });
  await fs.mkdir(referenceDir, { recursive: true });
  for (const d of reference) await fs.writeFile(path.join(referenceDir, d.name), d.text);
  const rawDocs: string[] = [];
  const add = async (name: string, content: string | Uint8Array) => {
    await fs.writeFile(path.join(corpusDir, name), content);
    rawDocs.push(normalise(typeof content === 'string' ? content : new TextDecoder().decode(content)));
  };
  for (const d of [...inDomain, ...offDomain]) await add(d.name, d.text);
  for (let i = 0; i < 4; i++)
    for (let k = 0; k < 15; k++) await add(`copy-${i}-${k}.txt`, nearCopy(inDomain[i].text, rng));
  for (let i = 0; i < 120; i++) await add(`junk-${i}.txt`, junkDoc(rng));
  // Malformed: binary blobs with a .txt name (a crawler's mis-typed downloads).
  for (let i = 0; i < (malformed ? 10 : 0); i++)
    await add(
      `blob-${i}.txt`,
      Uint8Array.from({ length: 4000 }, () => rng.int(256)),
    );
  return { corpusDir, referenceDir, rawDocs, evalDocs: evalDocs.map((d) => normalise(d.text)) };
}

// --- Ours: a real miningCycle --------------------------------------------------------------------
interface OursOutcome {
  result: CycleResult;
  settings: Settings;
  windowStart: number; // epoch ms: the first planCommit completed (the deadline is fixed from here)
  segmentEnds: number[]; // epoch ms each trainSegment completed, in order
  deadline: number;
  tokenizer: Tokenizer;
  cfg: GptConfig;
}

/**
 * The chain for a cycle whose training window is the budget. Training stops `reserveSeconds`
 * before commit 1 of the first round whose commit 1 opens at least minTrainSeconds + reserve
 * ahead; with commit.minTrainSeconds = budget and a chain cycle of a few seconds, that round's
 * deadline falls within one chain cycle (9 s here) after budget, whatever the chain's genesis.
 * The reference then gets the window ours actually had, to the millisecond.
 */
function chainFor(): Record<string, string> {
  const phases =
    'Distribute:1,Train:4,MinerCommit1:15,MinerCommit2:15,Submission:2,Validate:5,Merge:1,ValidatorCommit1:1,ValidatorCommit2:1';
  return { MINERFLOW_LOCAL_BLOCK_MS: String(BLOCK_MS), MINERFLOW_LOCAL_PHASES: phases };
}

async function runOurs(root: string, data: BenchData, budget: number): Promise<OursOutcome> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const [port, uiPort] = [await freePort(), await freePort()];
  // Its own dev server on free ports and its own data folder: nobody else's workers take its tasks.
  const settings = loadSettings({
    ...process.env,
    // A short folder: the store URI travels in commit 2, whose payload is at most 128 bytes.
    MINERFLOW_DATA_DIR: await fs.mkdtemp(path.join(os.tmpdir(), 'mf-deadline-')),
    TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
    MINERFLOW_UI_URL: `http://127.0.0.1:${uiPort}`,
    MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:j', // the devnet's validator scores on its own split of the domain
    MINERFLOW_CHAIN: 'devnet', // never a real chain from a benchmark
    MINERFLOW_DATA_ROOTS: root, // the polluted corpus lives in the bench's own folder
    ...chainFor(),
  });
  const base = CycleInputSchema.parse({});
  const plan = await planSteps(base, budget);
  note(
    `ours: calibrated ${plan.secondsPerStep.toFixed(3)} s/step, ${plan.evalSeconds.toFixed(2)} s per evaluation → ${plan.steps} planned steps in segments of ${plan.segmentSteps}`,
  );
  const input = {
    corpus: { path: data.corpusDir },
    curate: { heldOutFraction: 0.05, domain: { reference: data.referenceDir, quantile: 0.05 } },
    training: {
      steps: plan.steps,
      segmentSteps: plan.segmentSteps,
      warmupSteps: 20,
      emaDecay: 0.995,
      lrFind: { enabled: true, steps: LR_FIND_STEPS },
    },
    commit: { minTrainSeconds: budget, reserveSeconds: RESERVE_SECONDS, maxRounds: 3 },
    // The score is not what this bench measures; do not wait long for it.
    score: { timeoutSeconds: 30, pollSeconds: 1 },
    // Planned steps come from a calibration on a loaded machine: use leftover time while it still improves.
    policy: { autoExtend: true, maxExtraSteps: plan.steps },
  };

  const server = await ensureDevServer(settings, note);
  // The embedded devnet on a free port, started as the demo and the tests start it.
  const devnetLog = path.join(root, 'devnet.log');
  const devnet = await startLocalDevnet(settings, {
    log: (m) => void fs.appendFile(devnetLog, `${new Date().toISOString()} ${m}\n`),
  });
  settings.chain.url = devnet.url;
  const connection = await connectWorker(settings);
  const workers = [await createControlWorker(settings, connection), await createGpuWorker(settings, connection)];
  const running = workers.map((w) => w.run());
  try {
    const client = await connectClient(settings);
    const handle = await client.workflow.start(miningCycle, {
      taskQueue: TASK_QUEUES.control,
      workflowId: `bench-deadline-${Date.now()}`,
      args: [input],
    });
    note(`ours: miningCycle ${handle.workflowId} (${workflowUrl(settings, handle.workflowId)})`);
    const result = await follow(handle);
    const times = await activityTimes(handle);
    const status = await handle.query(statusQuery);
    note(
      `ours: score ${result.score.status}${result.score.reason ? ` (${result.score.reason})` : ''}; devnet log ${devnetLog}`,
    );
    const windowStart = times.completed.find((a) => a.name === 'planCommit')!.at;
    const store = openStore(settings.store, settings);
    // The tokenizer the published weights were trained with, as the train activity keeps it.
    const tokenizer = await stateTokenizer(store, result.training.best.key);
    return {
      result,
      settings,
      windowStart,
      segmentEnds: times.completed.filter((a) => a.name === 'trainSegment').map((a) => a.at),
      deadline: status.trainingDeadline!,
      tokenizer,
      cfg: modelConfig(base.model, tokenizer),
    };
  } finally {
    for (const w of workers) w.shutdown();
    await Promise.allSettled(running);
    await connection.close();
    await server.stop();
    // As the demo stops: chain clients first (an open socket keeps Node running), then the devnet.
    await disconnectAllChains();
    await devnet.close();
  }
}

/**
 * Steps that fit the budget at this machine's speed: a miner plans its cosine horizon from its
 * throughput. Measured on the cycle's model just before it starts; the LR range test and one
 * held-out evaluation per segment (two with EMA) come out of the same window.
 */
async function planSteps(
  cycle: CycleInput,
  budget: number,
): Promise<{ steps: number; segmentSteps: number; secondsPerStep: number; evalSeconds: number }> {
  await initBackend(cycle.model.backend, () => undefined);
  // The vocabulary the cycle's tokenizer asks for (a BPE on a small corpus may come out a little smaller).
  const cfg = modelConfig(cycle.model, { vocabSize: cycle.model.tokenizer === 'bytes' ? 256 : cycle.model.vocabSize });
  const rng = new Rng(5);
  const tokens: TokenIds =
    cfg.vocabSize > 256
      ? Uint16Array.from({ length: 1 << 18 }, () => rng.int(cfg.vocabSize))
      : Uint8Array.from({ length: 1 << 18 }, () => rng.int(256));
  const weights = initWeights(cfg, 0);
  const trainer = new Trainer(cfg, weights, { ...cycle.training, steps: 1000 }, tokens);
  await trainer.run({ untilStep: 3 }); // warm-up: kernels, allocations, replica threads
  const t = await trainer.run({ untilStep: 28 });
  const t0 = performance.now();
  evaluate(weights, cfg, tokens, { maxTokens: cycle.eval.maxTokens, batchSize: cycle.eval.batchSize });
  const evalSeconds = (performance.now() - t0) / 1000;
  trainer.dispose();
  disposeWeights(weights);
  const secondsPerStep = t.seconds / t.stepsRun;
  const segments = 5;
  const usable = budget - LR_FIND_STEPS * secondsPerStep - segments * 2 * evalSeconds - 5; // 5 s: loading data, saving states
  const steps = Math.max(50, Math.floor((0.95 * usable) / secondsPerStep));
  return { steps, segmentSteps: Math.ceil(steps / segments), secondsPerStep, evalSeconds };
}

/** Waits for the cycle, printing its phase changes and training progress now and then. */
async function follow(handle: WorkflowHandle<typeof miningCycle>): Promise<CycleResult> {
  const done = handle.result();
  let finished = false;
  void done.then(
    () => (finished = true),
    () => (finished = true),
  );
  let last = '';
  while (!finished) {
    const s = await handle.query(statusQuery).catch(() => undefined);
    const line = s
      ? `${s.phase} step ${s.stepsDone}/${s.plannedSteps}${s.best ? `, best held-out ${s.best.heldOutLoss.toFixed(4)}` : ''}`
      : '';
    if (s && line !== last && (s.phase !== 'train' || s.segments.length !== 0)) note(`ours: ${(last = line)}`);
    await Promise.race([done.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
  }
  return done;
}

/** When each activity completed, from the workflow's history (server time). */
async function activityTimes(handle: WorkflowHandle): Promise<{ completed: { name: string; at: number }[] }> {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = new Map<string, string>();
  const completed: { name: string; at: number }[] = [];
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes)
      scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
    if (e.activityTaskCompletedEventAttributes) {
      const at = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
      completed.push({
        name: scheduled.get(String(e.activityTaskCompletedEventAttributes.scheduledEventId)) ?? '',
        at,
      });
    }
  }
  return { completed };
}

/** Our evaluator on the cycle's states: the untrained start, each segment's end, and the published checkpoint. */
async function scoreOurs(o: OursOutcome, cfg: GptConfig, heldOut: TokenIds): Promise<ContenderRun> {
  const store = openStore(o.settings.store, o.settings);
  const tokensPerStep = o.result.training.stepsRun > 0 ? CycleInputSchema.parse({}).training.batchSize * cfg.seqLen : 0;
  const lossOf = async (key: string) => {
    const w = await loadWeights(await store.get(`${key}/model.safetensors`), cfg);
    try {
      return evaluate(w, cfg, heldOut, EVAL).loss;
    } finally {
      disposeWeights(w);
    }
  };
  const points: Point[] = [];
  const first = o.result.segments[0];
  if (first && first.startStep === 0)
    points.push({ seconds: 0, tokens: 0, loss: await lossOf(`runs/${o.result.workflowId}/step-0`) });
  for (const [i, s] of o.result.segments.entries()) {
    if (s.endStep === s.startStep) continue;
    points.push({
      seconds: (o.segmentEnds[i] - o.windowStart) / 1000,
      tokens: s.endStep * tokensPerStep,
      loss: await lossOf(s.state.key),
    });
  }
  const windowSeconds = (o.deadline - o.windowStart) / 1000;
  const final = {
    seconds: windowSeconds,
    tokens: o.result.training.steps * tokensPerStep,
    loss: await lossOf(o.result.checkpoint.key),
  };
  return { points, final, windowSeconds };
}

// --- The reference: plain PyTorch on the raw corpus ----------------------------------------------
async function runReference(
  root: string,
  cfg: GptConfig,
  tokenizer: Tokenizer,
  raw: TokenIds,
  seconds: number,
  heldOut: TokenIds,
): Promise<ContenderRun> {
  const dir = path.join(root, 'reference-run');
  await fs.mkdir(dir, { recursive: true });
  const tokens = path.join(dir, 'raw-tokens.bin');
  await fs.writeFile(tokens, Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)); // little-endian on every host we run on
  const train = CycleInputSchema.parse({}).training;
  const config = {
    ...cfg,
    tokens,
    tokenBytes: raw.BYTES_PER_ELEMENT,
    tokenizer: tokenizer.type,
    batchSize: train.batchSize,
    learningRate: 3e-4,
    beta1: 0.9,
    beta2: 0.95,
    weightDecay: 0.1,
    warmupSteps: 20,
    seconds,
    checkpointEverySeconds: seconds / 20,
    outDir: path.join(dir, 'checkpoints'),
    threads: 2,
    seed: 0,
  };
  const cfgFile = path.join(dir, 'config.json');
  await fs.writeFile(cfgFile, JSON.stringify(config));
  const py = torchPython();
  note(`reference: PyTorch training for ${seconds.toFixed(1)} s on ${raw.length} raw tokens`);
  const out = execFileSync(py, [path.join(__dirname, 'python', 'reference_miner.py'), cfgFile], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  const summary = JSON.parse(out.trim().split('\n').at(-1)!) as {
    checkpoints: { file: string; step: number; tokens: number; seconds: number }[];
    tokens: number;
    seconds: number;
    threads: number;
    torch: string;
    blas: string; // reference_miner.py refuses to run on the netlib reference BLAS
  };
  note(
    `reference: PyTorch ${summary.torch} on ${summary.threads} thread(s) (the faster on this machine, probed before its clock started), ${summary.checkpoints.length} checkpoints`,
  );
  note(`reference BLAS: ${summary.blas}`);
  const points: Point[] = [];
  for (const c of summary.checkpoints) {
    const w = await loadWeights(c.file, cfg);
    try {
      points.push({ seconds: c.seconds, tokens: c.tokens, loss: evaluate(w, cfg, heldOut, EVAL).loss });
    } finally {
      disposeWeights(w);
    }
  }
  if (points.length === 0) throw new Error('the reference wrote no checkpoint');
  return { points, final: points.at(-1)!, windowSeconds: summary.seconds };
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
