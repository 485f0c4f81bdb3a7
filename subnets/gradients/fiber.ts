// Fiber's request signing (rayonlabs/fiber, used by G.O.D's validators and miners): the validator
// signs "{nonce}:{miner_hotkey}:{sha256_hex(body)}" (POST) or "{nonce}:{miner_hotkey}" (GET) with
// its sr25519 hotkey; the miner checks the validator's stake, that the request is for it, the nonce
// and the signature. Statuses and order as fiber's miner dependencies: blacklist_low_stake (403)
// runs before verify_request (401).
import { createHash, randomInt } from 'node:crypto';
import type { KeyringPair } from '@polkadot/keyring/types';
import { stringToU8a, u8aToHex } from '@polkadot/util';
import { signatureVerify } from '@polkadot/util-crypto';
import type { Chain } from '../../infra/chain/chain';

export const HEADER = {
  validator: 'validator-hotkey',
  miner: 'miner-hotkey',
  nonce: 'nonce',
  signature: 'signature',
} as const;

/** fiber's NONCE_WINDOW_NS: a nonce is valid within ±120 s of its timestamp, once. */
export const NONCE_WINDOW_MS = 120_000;
/** fiber's min_stake_threshold default. */
export const DEFAULT_MIN_STAKE = 1000;

const ALPHANUMERICS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** fiber's generate_nonce: "{time_ns}_{10 alphanumerics}". */
export function newNonce(nowMs = Date.now()): string {
  let tail = '';
  for (let i = 0; i < 10; i++) tail += ALPHANUMERICS[randomInt(ALPHANUMERICS.length)];
  return `${BigInt(Math.round(nowMs)) * 1_000_000n}_${tail}`;
}

export function sha256Hex(body: Uint8Array | string): string {
  return createHash('sha256').update(body).digest('hex');
}

/** The message fiber signs: the body's hash is left out for a GET (no body). */
export function signingMessage(nonce: string, minerHotkey: string, body?: Uint8Array | string): string {
  return body === undefined ? `${nonce}:${minerHotkey}` : `${nonce}:${minerHotkey}:${sha256Hex(body)}`;
}

/** The four fiber headers for one request from `validator` to `minerHotkey` (body: the exact bytes sent). */
export function signRequest(
  validator: KeyringPair,
  minerHotkey: string,
  body?: Uint8Array | string,
  nowMs = Date.now(),
): Record<string, string> {
  const nonce = newNonce(nowMs);
  return {
    [HEADER.validator]: validator.address,
    [HEADER.miner]: minerHotkey,
    [HEADER.nonce]: nonce,
    [HEADER.signature]: u8aToHex(validator.sign(stringToU8a(signingMessage(nonce, minerHotkey, body)))),
  };
}

export type NonceCheck = 'ok' | 'malformed' | 'stale' | 'future' | 'replayed' | 'before-start';

/**
 * Nonces seen within the window, in memory. A restart would forget them, so nonces stamped before
 * this store was made are refused ('before-start'): a request signed before a restart cannot be
 * replayed after it. What stays open is a validator whose clock runs ahead stamping a nonce after
 * our start time that the previous process already saw — bounded by that clock's skew.
 */
export class NonceStore {
  private readonly expiry = new Map<string, number>();
  private nextSweep = 0;
  readonly startedAt: number;

  constructor(
    private readonly now: () => number = Date.now,
    readonly windowMs = NONCE_WINDOW_MS,
  ) {
    this.startedAt = now();
  }

  /** Checks a nonce's form and age without using it up. */
  check(nonce: string): NonceCheck {
    const m = /^(\d{1,20})_/.exec(nonce);
    if (!m) return 'malformed';
    const stampMs = Number(BigInt(m[1]) / 1_000_000n);
    const now = this.now();
    if (now - stampMs > this.windowMs) return 'stale';
    if (stampMs - now > this.windowMs) return 'future';
    if (stampMs < this.startedAt) return 'before-start';
    return this.expiry.has(nonce) ? 'replayed' : 'ok';
  }

  /** Uses the nonce up: a second use within the window is 'replayed'. */
  use(nonce: string): NonceCheck {
    const result = this.check(nonce);
    if (result !== 'ok') return result;
    const now = this.now();
    this.expiry.set(nonce, now + 2 * this.windowMs); // a future-stamped nonce stays valid up to 2 windows
    if (now >= this.nextSweep) {
      for (const [n, until] of this.expiry) if (until < now) this.expiry.delete(n);
      this.nextSweep = now + this.windowMs;
    }
    return 'ok';
  }

  get size(): number {
    return this.expiry.size;
  }
}

export type Verdict = { ok: true; validator: string } | { ok: false; status: number; message: string };

export interface VerifyOptions {
  minerHotkey: string;
  /** The validator's stake in TAO, undefined when the hotkey is not in the metagraph. */
  stakeOf: (hotkey: string) => number | undefined;
  minStake?: number;
  nonces: NonceStore;
}

/** Checks one request's fiber headers; `body` is the raw bytes received (undefined for a GET). */
export function verifyRequest(
  headers: Record<string, string | string[] | undefined>,
  body: Uint8Array | undefined,
  opts: VerifyOptions,
): Verdict {
  const get = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  for (const name of Object.values(HEADER))
    if (!get(name)) return { ok: false, status: 422, message: `missing header '${name}'` };
  const validator = get(HEADER.validator)!;
  const miner = get(HEADER.miner)!;
  const nonce = get(HEADER.nonce)!;
  const signature = get(HEADER.signature)!;

  const stake = opts.stakeOf(validator);
  if (stake === undefined) return { ok: false, status: 403, message: 'Hotkey not found in metagraph' };
  const minStake = opts.minStake ?? DEFAULT_MIN_STAKE;
  if (stake < minStake)
    return { ok: false, status: 403, message: `Insufficient stake of ${stake} (minimum ${minStake})` };
  if (miner !== opts.minerHotkey)
    return { ok: false, status: 401, message: `miner-hotkey ${miner} is not this miner (${opts.minerHotkey})` };

  // The signature is checked before the nonce is used up, so a forged request cannot burn a real one.
  const form = opts.nonces.check(nonce);
  if (form !== 'ok') return { ok: false, status: 401, message: `nonce is not valid: ${form}` };
  let valid: boolean;
  try {
    valid = signatureVerify(stringToU8a(signingMessage(nonce, miner, body)), signature, validator).isValid;
  } catch {
    valid = false; // a malformed address or signature
  }
  if (!valid) return { ok: false, status: 401, message: 'invalid signature: not signed by validator-hotkey' };
  const used = opts.nonces.use(nonce);
  if (used !== 'ok') return { ok: false, status: 401, message: `nonce is not valid: ${used}` };
  return { ok: true, validator };
}

/**
 * The subnet's stakes by hotkey, read from the chain and refreshed every `refreshMs` in the
 * background; lookups are synchronous so an offer never waits on the chain. A failed refresh keeps
 * the last metagraph.
 */
export class Metagraph {
  private stakes = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  lastError: unknown;

  constructor(
    private readonly chain: Pick<Chain, 'neurons'>,
    private readonly netuid: number,
    private readonly refreshMs = 5 * 60_000,
  ) {}

  async refresh(): Promise<void> {
    const neurons = await this.chain.neurons(this.netuid);
    this.stakes = new Map(neurons.map((n) => [n.hotkey, n.stake]));
  }

  /** Reads the metagraph once (failing if the chain cannot be read), then keeps it fresh. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().then(
        () => (this.lastError = undefined),
        (err: unknown) => (this.lastError = err),
      );
    }, this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  stakeOf = (hotkey: string): number | undefined => this.stakes.get(hotkey);
}
