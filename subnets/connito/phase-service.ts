// Connito's phase service (the subnet owner's API, cycle-api.connito.ai): which phase the chain is
// in and where the next and previous ones lie. Miners and validators time everything by it, so we
// do too. The answers are computed here exactly as connito/sn_owner/cycle.py computes them (the
// devnet serves them from this code), and read by the client below with timeouts and retries.
import type { PhaseSpec } from './phases';
import { cycleLength } from './phases';

/** The subnet owner's phase service on mainnet (Connito's cycle.owner_url default). */
export const CONNITO_OWNER_URL = 'https://cycle-api.connito.ai';

/** GET /get_phase (connito/shared/cycle.py PhaseResponse). Blocks are inclusive at both ends. */
export interface PhaseResponse {
  block: number;
  cycle_length: number;
  cycle_index: number;
  cycle_block_index: number;
  phase_name: string;
  phase_index: number;
  phase_start_block: number;
  phase_end_block: number;
  blocks_into_phase: number;
  blocks_remaining_in_phase: number;
}

/** GET /blocks_until_next_phase: each phase's next occurrence, [start, end, blocks until start]. */
export type NextPhases = Record<string, [number, number, number]>;
/** GET /previous_phase_blocks: each phase's last completed occurrence, [start, end]. */
export type PreviousPhases = Record<string, [number, number]>;

// --- The owner's answers (connito/sn_owner/cycle.py PhaseManager), for the devnet. ---------------
// Cycles start at block 0: cycle_index = block // cycle_length.

export function phaseAt(phases: PhaseSpec[], block: number): PhaseResponse {
  if (!Number.isInteger(block) || block < 0) throw new Error(`block ${block} must be a whole number ≥ 0`);
  const len = cycleLength(phases);
  const cycleIndex = Math.floor(block / len);
  const inCycle = block % len;
  let start = 0;
  for (const [i, p] of phases.entries()) {
    const end = start + p.blocks; // exclusive
    if (inCycle < end)
      return {
        block,
        cycle_length: len,
        cycle_index: cycleIndex,
        cycle_block_index: inCycle,
        phase_name: p.name,
        phase_index: i,
        phase_start_block: start + cycleIndex * len,
        phase_end_block: end - 1 + cycleIndex * len,
        blocks_into_phase: inCycle - start,
        blocks_remaining_in_phase: end - inCycle - 1,
      };
    start = end;
  }
  throw new Error('unreachable: a block always falls in some phase');
}

/** A phase that has started (even this very block) counts as passed only once its first block is behind. */
export function nextPhases(phases: PhaseSpec[], block: number): NextPhases {
  const len = cycleLength(phases);
  const inCycle = block % len;
  const cycleStart = block - inCycle;
  const out: NextPhases = {};
  let start = 0;
  for (const p of phases) {
    const startBlock = start >= inCycle ? cycleStart + start : cycleStart + len + start;
    out[p.name] = [startBlock, startBlock + p.blocks - 1, startBlock - block];
    start += p.blocks;
  }
  return out;
}

export function previousPhases(phases: PhaseSpec[], block: number): PreviousPhases {
  const len = cycleLength(phases);
  const out: PreviousPhases = {};
  for (const [name, [s, e]] of Object.entries(nextPhases(phases, block))) out[name] = [s - len, e - len];
  return out;
}

/**
 * The schedule (origin and phase lengths, in order) behind a service's answers: what our planner
 * needs. `next` lists phases in cycle order, as the service's JSON object keeps them.
 */
export function scheduleFrom(now: PhaseResponse, next: NextPhases): { origin: number; phases: PhaseSpec[] } {
  const phases = Object.entries(next).map(([name, [s, e]]) => ({ name, blocks: e - s + 1 }));
  if (phases.some((p) => !(p.blocks > 0)) || cycleLength(phases) !== now.cycle_length)
    throw new PhaseServiceError(
      `the phase service's phases (${JSON.stringify(next)}) do not add up to its cycle length ${now.cycle_length}`,
    );
  const origin = now.block - now.cycle_index * now.cycle_length - now.cycle_block_index;
  return { origin, phases };
}

// --- The client. ----------------------------------------------------------------------------------

export interface PhaseServiceOptions {
  timeoutMs?: number; // per request (Connito's api_timeout_sec: 10)
  retries?: number; // after the first try (Connito's api_retries: 3)
  backoffMs?: number; // doubled on each retry
}

export class PhaseServiceError extends Error {
  override name = 'PhaseServiceError';
}

export class PhaseService {
  constructor(
    readonly url: string,
    private readonly opts: PhaseServiceOptions = {},
  ) {
    if (!/^https?:\/\//.test(url)) throw new PhaseServiceError(`phase service URL '${url}' must start with http(s)://`);
  }

  phase(): Promise<PhaseResponse> {
    return this.get('/get_phase', isPhaseResponse);
  }

  nextPhases(): Promise<NextPhases> {
    return this.get('/blocks_until_next_phase', (v): v is NextPhases => isRangeMap(v, 3));
  }

  previousPhases(): Promise<PreviousPhases> {
    return this.get('/previous_phase_blocks', (v): v is PreviousPhases => isRangeMap(v, 2));
  }

  validatorWhitelist(): Promise<string[]> {
    return this.get(
      '/get_validator_whitelist',
      (v): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string'),
    );
  }

  /** The schedule as the service tells it now. */
  async schedule(): Promise<{ origin: number; phases: PhaseSpec[] }> {
    const [now, next] = await Promise.all([this.phase(), this.nextPhases()]);
    return scheduleFrom(now, next);
  }

  /** GET with a timeout, retrying network errors and 5xx/429 with backoff; other 4xx fail at once. */
  private async get<T>(route: string, valid: (v: unknown) => v is T): Promise<T> {
    const url = this.url.replace(/\/$/, '') + route;
    const retries = this.opts.retries ?? 3;
    let last = '';
    let tries = 0;
    for (let attempt = 0; attempt <= retries; attempt++) {
      tries++;
      if (attempt > 0) await new Promise((r) => setTimeout(r, (this.opts.backoffMs ?? 1000) * 2 ** (attempt - 1)));
      let res: Response;
      try {
        res = await fetch(url, { signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000) });
      } catch (err) {
        last = (err as Error).name === 'TimeoutError' ? 'timed out' : String((err as Error).cause ?? err);
        continue;
      }
      const text = await res.text();
      if (!res.ok) {
        last = `HTTP ${res.status}: ${text.slice(0, 200)}`;
        if (res.status < 500 && res.status !== 429) break;
        continue;
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new PhaseServiceError(
          `phase service ${url} answered with something that is not JSON: ${text.slice(0, 200)}`,
        );
      }
      if (!valid(body))
        throw new PhaseServiceError(`phase service ${url} answered in an unexpected shape: ${text.slice(0, 200)}`);
      return body;
    }
    throw new PhaseServiceError(`phase service ${url} failed after ${tries} ${tries === 1 ? 'try' : 'tries'}: ${last}`);
  }
}

function isPhaseResponse(v: unknown): v is PhaseResponse {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  const ints = [
    'block',
    'cycle_length',
    'cycle_index',
    'cycle_block_index',
    'phase_index',
    'phase_start_block',
    'phase_end_block',
    'blocks_into_phase',
    'blocks_remaining_in_phase',
  ];
  return (
    typeof r.phase_name === 'string' && ints.every((k) => Number.isInteger(r[k])) && (r.cycle_length as number) > 0
  );
}

function isRangeMap(v: unknown, n: number): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const entries = Object.values(v);
  return entries.length > 0 && entries.every((x) => Array.isArray(x) && x.length === n && x.every(Number.isInteger));
}
