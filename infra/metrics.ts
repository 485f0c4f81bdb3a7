// Prometheus metrics of a worker process: one registry per process (a process running both workers,
// like `minerflow dev`, exports both sets on one endpoint), served on /metrics. Activities record
// into it through the small functions below; workflows cannot (they run in a deterministic sandbox).
//
// Where Prometheus finds the endpoint: MINERFLOW_METRICS_PORT picks the port (0, the default: any
// free port, so several workers on one host never collide; `off`: no endpoint). Every worker writes
// its address to $MINERFLOW_DATA_DIR/metrics/targets/<worker>-<pid>.json in Prometheus' file_sd
// format and removes it on exit, so a scrape config pointed at that folder finds them all.
import { promises as fs, rmSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { ChainSchedule } from '../subnets/connito/phases';
import type { Chain } from './chain/chain';
import { cycleLength } from '../subnets/connito/phases';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

/** Who a series belongs to: the subnet (by name) and the hotkey (`wallet/hotkey`, names only, never keys). */
export interface FleetLabels {
  subnet: string;
  hotkey: string;
}
const FLEET = ['subnet', 'hotkey'] as const;
const TRAIN = [...FLEET, 'queue'] as const;

const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
  new Gauge<L>({ name, help, labelNames, registers: [registry] });
const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
  new Counter<L>({ name, help, labelNames, registers: [registry] });

export const metrics = {
  trainLoss: gauge('minerflow_train_loss', 'Training loss of the last step (nats/token)', TRAIN),
  trainAuxLoss: gauge('minerflow_train_aux_loss', 'MoE load-balancing auxiliary loss of the last step', TRAIN),
  learningRate: gauge('minerflow_train_learning_rate', 'Learning rate of the last step', TRAIN),
  gradNorm: gauge('minerflow_train_grad_norm', 'Gradient norm of the last step (before clipping)', TRAIN),
  tokensPerSecond: gauge('minerflow_train_tokens_per_second', 'Training throughput of the last step', TRAIN),
  trainStep: gauge('minerflow_train_step', 'The step training has reached', TRAIN),
  plannedSteps: gauge('minerflow_train_planned_steps', "The step the running segment's schedule ends at", TRAIN),
  heldOutLoss: gauge(
    'minerflow_segment_heldout_loss',
    'Held-out loss at the end of the last segment (nats/token)',
    FLEET,
  ),
  segment: gauge('minerflow_segment', 'The last finished segment', FLEET),
  segments: counter('minerflow_segments_total', 'Training segments finished', FLEET),
  skippedSteps: counter(
    'minerflow_skipped_steps_total',
    'Training steps skipped for a non-finite loss or gradient',
    FLEET,
  ),
  backtracks: counter('minerflow_backtracks_total', 'Segments started from the best state after a backtrack', FLEET),
  round: gauge('minerflow_cycle_round', 'The round the cycle on this hotkey is mining for', FLEET),
  blocksRemaining: new Gauge({
    name: 'minerflow_phase_blocks_remaining',
    help: 'Blocks left in the chain phase now running',
    labelNames: ['subnet', 'phase'] as const,
    registers: [registry],
    collect: () => chainObserver?.(),
  }),
  chainBlock: gauge('minerflow_chain_block', 'The chain head seen by this worker', ['subnet']),
  commits: counter('minerflow_commits_total', 'Commitments included on chain', [...FLEET, 'phase']),
  commitsMissed: counter('minerflow_commits_missed_total', 'Commitments not made, by reason', [
    ...FLEET,
    'phase',
    'reason',
  ]),
  scoreReports: counter('minerflow_score_reports_total', 'Rounds whose outcome was read, by status', [
    ...FLEET,
    'status',
  ]),
  score: gauge('minerflow_score', "The validators' raw score of a round: max(0, baseline − loss)^1.2", [
    ...FLEET,
    'round',
  ]),
  incentiveShare: gauge('minerflow_incentive_share', 'Incentive[uid] / sum(Incentive) after a round was scored', [
    ...FLEET,
    'round',
  ]),
  validatorLoss: gauge('minerflow_validator_loss', 'Held-out loss the validators measured for a round', [
    ...FLEET,
    'round',
  ]),
};

/** Rounds kept per hotkey in the per-round gauges: Connito's rolling window is 8 rounds. */
const ROUNDS_KEPT = 8;
const roundsSeen = new Map<string, number[]>();

/** What a trainer reports per step (trainers/trainer.ts TrainProgress, the fields a gauge shows). */
export interface StepProgress {
  stage: string;
  step?: number;
  totalSteps?: number;
  loss?: number;
  auxLoss?: number;
  lr?: number;
  gradNorm?: number;
  tokensPerSec?: number;
}

/** Maps one progress report of a training segment to the training gauges. */
export function recordTrainProgress(labels: FleetLabels & { queue: string }, p: StepProgress): void {
  if (p.stage !== 'training') return;
  trainingSeen(labels);
  const set = (g: Gauge<(typeof TRAIN)[number]>, v: number | undefined) => {
    if (typeof v === 'number' && Number.isFinite(v)) g.set(labels, v);
  };
  set(metrics.trainLoss, p.loss);
  set(metrics.trainAuxLoss, p.auxLoss);
  set(metrics.learningRate, p.lr);
  set(metrics.gradNorm, p.gradNorm);
  set(metrics.tokensPerSecond, p.tokensPerSec);
  set(metrics.trainStep, p.step);
  set(metrics.plannedSteps, p.totalSteps);
}

/** A finished segment: its held-out loss, skipped steps, and whether it started after a backtrack. */
export function recordSegment(
  labels: FleetLabels,
  s: { segment: number; heldOutLoss: number | null; skippedBatches: number },
  backtrack: boolean,
): void {
  trainingSeen(labels);
  // A non-finite held-out loss (NaN storm) is shown as NaN, which Prometheus keeps and graphs as a gap.
  metrics.heldOutLoss.set(labels, typeof s.heldOutLoss === 'number' ? s.heldOutLoss : NaN);
  metrics.segment.set(labels, s.segment);
  metrics.segments.inc(labels);
  metrics.skippedSteps.inc(labels, s.skippedBatches);
  if (backtrack) metrics.backtracks.inc(labels);
}

const COMMIT_PHASES = ['commit1', 'commit2'];
const MISS_REASONS = ['window_closed', 'overwritten', 'rejected'];
const SCORE_STATUSES = ['scored', 'rejected', 'overwritten', 'timeout', 'missed'];
const known = new Set<string>();

/**
 * Puts a hotkey's control counters on the page at 0 the first time it is seen: Prometheus'
 * increase() cannot see the first event of a series that is born at 1.
 */
export function recordHotkeySeen(labels: FleetLabels): void {
  const key = `${labels.subnet}\0${labels.hotkey}`;
  if (known.has(key)) return;
  known.add(key);
  for (const phase of COMMIT_PHASES) {
    metrics.commits.inc({ ...labels, phase }, 0);
    for (const reason of MISS_REASONS) metrics.commitsMissed.inc({ ...labels, phase, reason }, 0);
  }
  for (const status of SCORE_STATUSES) metrics.scoreReports.inc({ ...labels, status }, 0);
}

/** The same for the training counters, on the gpu worker. */
function trainingSeen({ subnet, hotkey }: FleetLabels): void {
  const labels = { subnet, hotkey }; // the counters have no queue label
  const key = `train\0${labels.subnet}\0${labels.hotkey}`;
  if (known.has(key)) return;
  known.add(key);
  metrics.segments.inc(labels, 0);
  metrics.skippedSteps.inc(labels, 0);
  metrics.backtracks.inc(labels, 0);
}

export function recordCommit(labels: FleetLabels, phase: string): void {
  metrics.commits.inc({ ...labels, phase });
}

export function recordMissedCommit(labels: FleetLabels, phase: string, reason: string): void {
  metrics.commitsMissed.inc({ ...labels, phase, reason });
}

export function recordRound(labels: FleetLabels, round: number): void {
  recordHotkeySeen(labels);
  metrics.round.set(labels, round);
}

/** A round's outcome; the per-round gauges keep the last ROUNDS_KEPT rounds of each hotkey. */
export function recordScore(
  labels: FleetLabels,
  r: { round: number; status: string; rawScore?: number; incentiveShare?: number; validatorLoss?: number },
): void {
  metrics.scoreReports.inc({ ...labels, status: r.status });
  const key = `${labels.subnet}\0${labels.hotkey}`;
  const rounds = [...(roundsSeen.get(key) ?? []).filter((x) => x !== r.round), r.round].sort((a, b) => a - b);
  for (const old of rounds.splice(0, Math.max(0, rounds.length - ROUNDS_KEPT))) {
    const l = { ...labels, round: String(old) };
    metrics.score.remove(l);
    metrics.incentiveShare.remove(l);
    metrics.validatorLoss.remove(l);
  }
  roundsSeen.set(key, rounds);
  const l = { ...labels, round: String(r.round) };
  if (r.rawScore !== undefined) metrics.score.set(l, r.rawScore);
  if (r.incentiveShare !== undefined) metrics.incentiveShare.set(l, r.incentiveShare);
  if (r.validatorLoss !== undefined) metrics.validatorLoss.set(l, r.validatorLoss);
}

/** The phase the chain is in and the blocks left in it (phases repeat from the schedule's origin). */
export function currentPhase(s: Pick<ChainSchedule, 'block' | 'origin' | 'phases'>): {
  phase: string;
  blocksRemaining: number;
} {
  const len = cycleLength(s.phases);
  let offset = (((s.block - s.origin) % len) + len) % len;
  for (const p of s.phases) {
    if (offset < p.blocks) return { phase: p.name, blocksRemaining: p.blocks - offset };
    offset -= p.blocks;
  }
  throw new Error('currentPhase: a phase schedule with no blocks');
}

/** How long a chain's phase schedule is reused between scrapes: it changes only with a runtime upgrade. */
const SCHEDULE_TTL_MS = 60_000;

let chainObserver: (() => Promise<void>) | undefined;

/**
 * Shows the chain's phase at every scrape, once this worker has a chain connection (`chain()`
 * returns undefined before: a scrape never opens one). One block-number RPC per scrape; the
 * schedule (which measures the block time over many blocks) is re-read once a minute. A slow or
 * failing chain leaves the last values.
 */
export function observeChain(subnet: string, chain: () => Promise<Chain> | undefined): void {
  let schedule: { at: number; value: ChainSchedule } | undefined;
  chainObserver = async () => {
    const pending = chain();
    if (!pending) return;
    const read = async () => {
      const c = await pending;
      if (!schedule || Date.now() - schedule.at > SCHEDULE_TTL_MS)
        schedule = { at: Date.now(), value: await c.schedule() };
      return { ...schedule.value, block: await c.blockNumber() };
    };
    const timeout = new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000).unref());
    const s = await Promise.race([read().catch(() => undefined), timeout]);
    if (!s) return;
    const { phase, blocksRemaining } = currentPhase(s);
    metrics.blocksRemaining.reset();
    metrics.blocksRemaining.set({ subnet, phase }, blocksRemaining);
    metrics.chainBlock.set({ subnet }, s.block);
  };
}

export interface MetricsEndpoint {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `registry` on http://host:port/metrics and writes the file_sd target for Prometheus.
 * `port` 0 takes any free port. Returns undefined when metrics are off.
 */
export async function startMetricsServer(opts: {
  port: number | 'off';
  host: string;
  dataDir: string;
  worker: string;
}): Promise<MetricsEndpoint | undefined> {
  const listenPort = opts.port;
  if (listenPort === 'off') return undefined;
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end('minerflow: metrics are at /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `metrics: cannot listen on ${opts.host}:${opts.port} (${err.code ?? err.message}); set MINERFLOW_METRICS_PORT to a free port, 0 for any, or off`,
          { cause: err },
        ),
      ),
    );
    server.listen(listenPort, opts.host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const target = path.join(opts.dataDir, 'metrics', 'targets', `${opts.worker}-${process.pid}.json`);
  await fs.mkdir(path.dirname(target), { recursive: true });
  const scrapeHost = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
  await fs.writeFile(
    target,
    JSON.stringify([{ targets: [`${scrapeHost}:${port}`], labels: { worker: opts.worker } }], null, 1) + '\n',
  );
  // A target left behind by a killed worker only makes Prometheus mark it down; a clean exit removes it.
  const removeTarget = () => rmSync(target, { force: true });
  process.once('exit', removeTarget);
  return {
    url: `http://${scrapeHost}:${port}/metrics`,
    port,
    close: async () => {
      removeTarget();
      process.removeListener('exit', removeTarget);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
