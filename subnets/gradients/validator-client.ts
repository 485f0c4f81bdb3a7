// What a G.O.D validator (before release 6.0) does to reach a miner: fiber-signed POSTs of an offer
// (3 s timeout, validator/cycle/process_tasks.py) and of a training request, and a signed GET of
// the submission (10 s, fiber's default in validator/utils/call_endpoint.py). Like G.O.D, a miner
// that fails to answer in time or answers non-200 counts as a decline / no answer.
import type { KeyringPair } from '@polkadot/keyring/types';
import { signRequest } from './fiber';
import type { MinerSubmission, MinerTaskOffer, MinerTaskResponse, TaskType, TrainResponse } from './protocol';

export const OFFER_TIMEOUT_MS = 3_000;
export const REQUEST_TIMEOUT_MS = 10_000;

export function startTrainingEndpoint(taskType: TaskType): string {
  if (taskType === 'GrpoTask') return '/start_training_grpo/';
  if (taskType === 'ImageTask') return '/start_training_image/';
  return '/start_training/';
}

export interface RawAnswer {
  status: number;
  body: unknown;
  ms: number;
}

export class ValidatorClient {
  constructor(
    private readonly keypair: KeyringPair,
    /** The miner's base URL, e.g. http://127.0.0.1:7999 */
    readonly minerUrl: string,
    readonly minerHotkey: string,
  ) {}

  /** One signed request; throws on a network error or timeout. */
  async request(
    method: 'GET' | 'POST',
    endpoint: string,
    payload?: unknown,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<RawAnswer> {
    const body = method === 'POST' ? JSON.stringify(payload) : undefined;
    const headers = signRequest(this.keypair, this.minerHotkey, body);
    const started = performance.now();
    const res = await fetch(this.minerUrl.replace(/\/$/, '') + endpoint, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: kept as text
    }
    return { status: res.status, body: parsed, ms: performance.now() - started };
  }

  /** G.O.D's _make_offer: no answer in 3 s, or not 200, is a decline with the reason. */
  async offer(offer: MinerTaskOffer): Promise<MinerTaskResponse> {
    const endpoint = offer.task_type === 'ImageTask' ? '/task_offer_image/' : '/task_offer/';
    try {
      const r = await this.request('POST', endpoint, offer, OFFER_TIMEOUT_MS);
      if (r.status !== 200) return { accepted: false, message: `miner answered ${r.status}: ${detailOf(r.body)}` };
      const b = r.body as Partial<MinerTaskResponse>;
      return { accepted: b.accepted === true, message: typeof b.message === 'string' ? b.message : 'No message given' };
    } catch (err) {
      return { accepted: false, message: `Error during offer: ${(err as Error).message}` };
    }
  }

  /** Tells the miner to start; null when it did not answer 200 (G.O.D then counts it as not training). */
  async startTraining(taskType: TaskType, request: unknown): Promise<TrainResponse | null> {
    const r = await this.request('POST', startTrainingEndpoint(taskType), request).catch(() => null);
    return r?.status === 200 ? (r.body as TrainResponse) : null;
  }

  /** The miner's submission for a task, null when it has none (404) or does not answer. */
  async submission(taskId: string): Promise<MinerSubmission | null> {
    const r = await this.request('GET', `/get_latest_model_submission/${encodeURIComponent(taskId)}`).catch(() => null);
    return r?.status === 200 ? (r.body as MinerSubmission) : null;
  }
}

function detailOf(body: unknown): string {
  if (body && typeof body === 'object' && 'detail' in body) return String((body as { detail: unknown }).detail);
  return typeof body === 'string' ? body : JSON.stringify(body);
}
