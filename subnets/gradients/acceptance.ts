// The acceptance policy: a pure function from an offer and what the miner knows (its pools, their
// load, the record of past jobs of this kind, the time) to a decision with its reason. Accepting a
// job and not delivering it is penalised, so an offer is accepted only when some pool can hold the
// model and, with the job inserted into its queue by deadline, this job and every job already
// accepted there still finish before their deadlines minus a reserve.
import { z } from 'zod';
import type { Pool } from './config';
import type { JobKind, JobKindStats, OfferDecision, PoolJob, PoolLoad } from './ports';
import type { MinerTaskOffer, TaskType } from './protocol';

export type Method = 'full' | 'lora' | 'lastLayers';

/** Why an offer was accepted or declined, as a metric label. */
export type ReasonClass = 'accepted' | 'task_type' | 'family' | 'size_unknown' | 'memory' | 'deadline';

export interface AcceptancePolicy {
  /** Model families taken (modelFamily of the name). */
  families: string[];
  /** Methods in order of preference: full fine-tuning is best for small models (the mining guide). */
  methods: Method[];
  /** Rows assumed when the offer has no ds_size, and tokens per row. */
  defaultRows: number;
  tokensPerRow: number;
  /** Passes over the data a job needs at least. */
  epochs: number;
  /** Per job: download, preparation, upload. */
  overheadSeconds: number;
  /** Kept free before every deadline: a fixed part plus a share of the time left. */
  reserveSeconds: number;
  reserveFraction: number;
  /** A job at least this long leaves its slot idle for `cooldownSeconds` after it (memory release, heat). */
  heavySeconds: number;
  cooldownSeconds: number;
  /** Memory needed on top of weights and optimizer state (activations, buffers), as a factor. */
  memoryOverhead: number;
}

/** The policy as a config file gives it (every field optional: DEFAULT_POLICY fills the rest). */
export const AcceptancePolicySchema = z
  .object({
    families: z.array(z.string().min(1)).min(1),
    methods: z.array(z.enum(['full', 'lora', 'lastLayers'])).min(1),
    defaultRows: z.number().int().positive(),
    tokensPerRow: z.number().positive(),
    epochs: z.number().positive(),
    overheadSeconds: z.number().min(0),
    reserveSeconds: z.number().min(0),
    reserveFraction: z.number().min(0).max(0.9),
    heavySeconds: z.number().positive(),
    cooldownSeconds: z.number().min(0),
    memoryOverhead: z.number().min(1),
  })
  .partial()
  .strict();

export const DEFAULT_POLICY: AcceptancePolicy = {
  families: ['llama', 'qwen2', 'mistral', 'gemma', 'phi', 'smollm', 'gpt2', 'minerflow-gpt'],
  methods: ['full', 'lora', 'lastLayers'],
  defaultRows: 10_000,
  tokensPerRow: 256,
  epochs: 1,
  overheadSeconds: 300,
  reserveSeconds: 600,
  reserveFraction: 0.1,
  heavySeconds: 4 * 3600,
  cooldownSeconds: 600,
  memoryOverhead: 1.2,
};

/**
 * Bytes per parameter for each method. Full fine-tuning with AdamW: fp32 weights, gradients and two
 * moments (16 B). LoRA: frozen 16-bit weights (2 B) plus adapters and their optimizer state (about
 * 1% of the parameters at 16 B). Last layers: frozen 16-bit weights plus about a tenth trained fully.
 */
export const BYTES_PER_PARAM: Record<Method, number> = { full: 16, lora: 2 + 0.01 * 16, lastLayers: 2 + 0.1 * 16 };

/** Training speed relative to full fine-tuning (no weight gradients or optimizer for the frozen part). */
export const METHOD_SPEEDUP: Record<Method, number> = { full: 1, lora: 1.5, lastLayers: 2 };

const FAMILIES: [RegExp, string][] = [
  [/minerflow-gpt/, 'minerflow-gpt'],
  [/tinyllama|llama|vicuna|alpaca/, 'llama'],
  [/qwen/, 'qwen2'],
  [/mixtral|mistral/, 'mistral'],
  [/gemma/, 'gemma'],
  [/phi/, 'phi'],
  [/smollm/, 'smollm'],
  [/gpt2|distilgpt/, 'gpt2'],
  [/pythia|gpt-neox/, 'pythia'],
  [/falcon/, 'falcon'],
  [/deepseek/, 'deepseek'],
  [/opt-\d/, 'opt'],
];

/** The model family from a Hugging Face model name: 'unsloth/Llama-3.2-1B' → 'llama'; unknown → the name's first word. */
export function modelFamily(model: string): string {
  const name = (model.split('/').pop() ?? model).toLowerCase();
  for (const [re, family] of FAMILIES) if (re.test(name)) return family;
  return name.split(/[-_.]/)[0] || name;
}

/** Parameters from the name: '1B', '7b', '135M', '0.5B', '1.5b' (the last such token); null if none. */
export function paramsFromName(model: string): number | null {
  const name = model.split('/').pop() ?? model;
  const all = [...name.matchAll(/(?:^|[-_.])(\d+(?:\.\d+)?)([bBmMkK])(?=$|[-_.])/g)];
  const m = all.at(-1);
  if (!m) return null;
  const scale = { b: 1e9, m: 1e6, k: 1e3 }[m[2].toLowerCase() as 'b' | 'm' | 'k'];
  return Math.round(Number(m[1]) * scale);
}

export function offerParams(offer: Pick<MinerTaskOffer, 'model' | 'model_params_count'>): number | null {
  return offer.model_params_count && offer.model_params_count > 0
    ? offer.model_params_count
    : paramsFromName(offer.model);
}

/** Size buckets of the record of past jobs. */
export function sizeBucket(params: number | null): string {
  if (params === null) return 'unknown';
  const b = params / 1e9;
  // Small models differ by orders of magnitude in speed: their buckets are decades, not one '<1B'.
  if (params < 1e6) return '<1M';
  if (params < 1e7) return '1-10M';
  if (params < 1e8) return '10-100M';
  if (b < 1) return '100M-1B';
  if (b < 3) return '1-3B';
  if (b < 8) return '3-8B';
  if (b < 15) return '8-15B';
  if (b < 40) return '15-40B';
  return '40B+';
}

export function jobKind(offer: Pick<MinerTaskOffer, 'model' | 'model_params_count' | 'task_type'>): JobKind {
  return { family: modelFamily(offer.model), sizeBucket: sizeBucket(offerParams(offer)), taskType: offer.task_type };
}

/** Task types only an external (command) trainer can run. */
const COMMAND_ONLY: TaskType[] = ['GrpoTask', 'ImageTask'];

export function poolTakes(pool: Pool, taskType: TaskType): boolean {
  return pool.taskTypes.includes(taskType) && (pool.trainer === 'command' || !COMMAND_ONLY.includes(taskType));
}

export interface DecisionContext {
  pools: Pool[];
  loads: PoolLoad[];
  /** The record of past jobs of this offer's kind (jobKind), null when there is none. */
  stats: JobKindStats | null;
  now: number; // epoch ms
  policy?: Partial<AcceptancePolicy>;
}

export type Decision = OfferDecision & { reasonClass: ReasonClass };

const GB = 1024 ** 3;
const fmtGB = (bytes: number) => `${(bytes / GB).toFixed(1)} GiB`;
const fmtParams = (p: number) => (p >= 1e9 ? `${+(p / 1e9).toFixed(2)}B` : `${+(p / 1e6).toFixed(1)}M`);
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

function declined(reasonClass: ReasonClass, reason: string): Decision {
  return {
    accepted: false,
    reason,
    reasonClass,
    pool: null,
    method: null,
    estimatedSeconds: null,
    estimatedFinish: null,
  };
}

/** Time kept free before `deadline`. */
export function reserveMs(deadline: number, now: number, p: AcceptancePolicy): number {
  return p.reserveSeconds * 1000 + p.reserveFraction * Math.max(0, deadline - now);
}

/**
 * Earliest-deadline-first on one pool: running jobs keep their slots; `queued` (the new job among
 * them) start in deadline order on the first free slot. Returns each queued job's finish (epoch ms).
 */
export function scheduleEdf(
  slots: number,
  running: PoolJob[],
  queued: PoolJob[],
  now: number,
  p: Pick<AcceptancePolicy, 'heavySeconds' | 'cooldownSeconds'>,
): Map<string, number> {
  const freeAt = (job: PoolJob, start: number) =>
    start + job.estimatedSeconds * 1000 + (job.estimatedSeconds >= p.heavySeconds ? p.cooldownSeconds * 1000 : 0);
  const busy = running.map((j) => freeAt(j, now)).sort((a, b) => a - b);
  // More running jobs than slots (a shrunken pool): a slot frees only when the surplus has finished.
  const free = busy.slice(Math.max(0, busy.length - slots));
  while (free.length < slots) free.push(now);
  const finish = new Map<string, number>();
  for (const job of [...queued].sort((a, b) => a.deadline - b.deadline)) {
    free.sort((a, b) => a - b);
    const start = free[0];
    finish.set(job.taskId, start + job.estimatedSeconds * 1000);
    free[0] = freeAt(job, start);
  }
  return finish;
}

/** Decides one offer. Every decision carries its reason. */
export function decideOffer(offer: MinerTaskOffer, ctx: DecisionContext): Decision {
  const p: AcceptancePolicy = { ...DEFAULT_POLICY, ...ctx.policy };
  const { now } = ctx;
  const hours = offer.hours_to_complete;
  if (!(hours > 0)) return declined('deadline', `hours_to_complete must be positive (got ${hours})`);

  const takers = ctx.pools.filter((pool) => poolTakes(pool, offer.task_type));
  if (takers.length === 0) {
    const needsCommand = COMMAND_ONLY.includes(offer.task_type);
    return declined(
      'task_type',
      needsCommand
        ? `${offer.task_type} needs a pool whose trainer is 'command'; none of ${ctx.pools.map((x) => `${x.name} (${x.trainer})`).join(', ')} takes it`
        : `no pool takes ${offer.task_type}`,
    );
  }

  const family = modelFamily(offer.model);
  if (!p.families.includes(family))
    return declined(
      'family',
      `model family '${family}' (${offer.model}) is not taken (allowed: ${p.families.join(', ')})`,
    );

  const params = offerParams(offer);
  if (params === null)
    return declined('size_unknown', `cannot tell ${offer.model}'s size: no model_params_count and none in its name`);

  const rows = offer.ds_size && offer.ds_size > 0 ? offer.ds_size : p.defaultRows;
  const tokens = rows * p.tokensPerRow * p.epochs;
  const deadline = now + hours * 3600_000;
  const fitting: { pool: Pool; method: Method }[] = [];
  for (const pool of takers) {
    const method = p.methods.find(
      (m) => pool.methods.includes(m) && params * BYTES_PER_PARAM[m] * p.memoryOverhead <= pool.memoryBytes,
    );
    if (method) fitting.push({ pool, method });
  }
  if (fitting.length === 0) {
    const biggest = Math.max(...takers.map((x) => x.memoryBytes));
    const leanest = Math.min(...p.methods.map((m) => BYTES_PER_PARAM[m]));
    return declined(
      'memory',
      `${offer.model} (${fmtParams(params)} params) needs at least ${fmtGB(params * leanest * p.memoryOverhead)}; the largest slot taking ${offer.task_type} has ${fmtGB(biggest)}`,
    );
  }

  let best: Decision | null = null;
  const misses: string[] = [];
  for (const { pool, method } of fitting) {
    // Throughput: what past jobs of this kind measured, else the pool's figure per billion parameters.
    const measured = ctx.stats?.tokensPerSec ?? null;
    const tokensPerSec = (measured ?? pool.tokensPerSecPerBillion / (params / 1e9)) * METHOD_SPEEDUP[method];
    const estimatedSeconds = Math.ceil(tokens / tokensPerSec + p.overheadSeconds);
    const load = ctx.loads.find((l) => l.pool === pool.name) ?? { pool: pool.name, running: [], queued: [] };
    const job: PoolJob = { taskId: offer.task_id, deadline, estimatedSeconds, startedAt: null };
    const finish = scheduleEdf(pool.slots, load.running, [...load.queued, job], now, p);
    const late = [job, ...load.queued].find((j) => finish.get(j.taskId)! > j.deadline - reserveMs(j.deadline, now, p));
    if (late) {
      misses.push(
        late === job
          ? `${pool.name}: would finish ${iso(finish.get(job.taskId)!)}, after the deadline ${iso(deadline)} less the reserve (${method}, ~${estimatedSeconds} s of work${load.running.length + load.queued.length ? `, ${plural(load.running.length + load.queued.length, 'job')} ahead or running` : ''})`
          : `${pool.name}: would push accepted job ${late.taskId} past its deadline`,
      );
      continue;
    }
    const estimatedFinish = finish.get(job.taskId)!;
    if (!best || estimatedFinish < best.estimatedFinish!)
      best = {
        accepted: true,
        reasonClass: 'accepted',
        reason: `${pool.name} (${method}): ~${estimatedSeconds} s of work${measured ? ' at the measured speed of past jobs' : ''}, done by ${iso(estimatedFinish)}, deadline ${iso(deadline)}`,
        pool: pool.name,
        method,
        estimatedSeconds,
        estimatedFinish,
      };
  }
  return best ?? declined('deadline', `cannot finish in ${duration(hours * 3600)}: ${misses.join('; ')}`);
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** 0.0117 h → "42 s", 1.5 h → "1 h 30 min": what people read in a decline. */
function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
