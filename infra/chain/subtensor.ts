// The Chain port over @polkadot/api: subtensor itself (finney, testnet) or the local devnet, which
// speaks the same JSON-RPC with the same metadata. Only the phase schedule differs: the devnet
// tells it (minerflow_schedule), a real chain's comes from configuration.
import { ApiPromise, WsProvider } from '@polkadot/api';
import type { KeyringPair } from '@polkadot/keyring/types';
import type { DispatchError } from '@polkadot/types/interfaces';
import type { Codec } from '@polkadot/types/types';
import type { ChainSchedule, PhaseSpec } from '../../subnets/connito/phases';
import { CONNITO_OWNER_URL, PhaseService } from '../../subnets/connito/phase-service';
import { SUBTENSOR_SIGNED_EXTENSIONS } from '../devnet/metadata';
import { ChainRejectedError, type Chain, type ChainScore, type Neuron } from './chain';

type Registration = { block: { toNumber(): number }; info: { fields: (Codec & { isNone: boolean; value: Codec })[] } };
type OptionalRegistration = { isNone: boolean; unwrap(): Registration };

/** A commitment's fields (Raw0..Raw128 pieces) joined back into the UTF-8 text that was committed. */
function decodeRegistration(reg: Registration): { block: number; payload: string } {
  const raw = reg.info.fields.map((f) => (f.isNone ? Buffer.alloc(0) : Buffer.from(f.value.toU8a(true))));
  return { block: reg.block.toNumber(), payload: Buffer.concat(raw).toString('utf8') };
}

export interface SubtensorChainOptions {
  url: string; // ws:// or wss://
  /** The subnet's phases and block time when the endpoint does not tell them (a real chain). */
  phases: PhaseSpec[];
  blockMs: number;
  origin?: number;
  /**
   * Connito's phase service, which the schedule then comes from (phases and origin; the block
   * number and block time still come from the chain). Absent: the devnet's own service on its port
   * when the endpoint is a devnet, else Connito's (unless `phasesFixed`).
   */
  ownerUrl?: string;
  /** MINERFLOW_PHASES was given: on a real chain, `phases` rather than Connito's phase service. */
  phasesFixed?: boolean;
  /** How long to wait for a commitment to be included in a block. */
  inclusionTimeoutMs?: number;
  /** How long a call waits for a dropped connection to come back before failing (retryably). */
  reconnectWaitMs?: number;
}

/** Blocks looked back over to measure the chain's real block time. */
const OBSERVED_BLOCKS = 20;

/** Largest raw commitment: the biggest variant of subtensor's `Data` is Raw128. */
export const MAX_RAW_COMMITMENT_BYTES = 128;

// One ApiPromise per endpoint per process, shared by every SubtensorChain on it.
const apis = new Map<string, { api: Promise<ApiPromise>; provider: WsProvider; users: number }>();

async function acquireApi(url: string): Promise<{ api: ApiPromise; provider: WsProvider }> {
  let entry = apis.get(url);
  if (!entry) {
    // autoConnectMs: the provider reconnects on its own after a dropped socket.
    const provider = new WsProvider(url, 1000);
    const api = ApiPromise.create({
      provider,
      signedExtensions: SUBTENSOR_SIGNED_EXTENSIONS,
      noInitWarn: true,
      throwOnConnect: true,
    }).catch(async (err: Error) => {
      apis.delete(url);
      await provider.disconnect().catch(() => undefined);
      throw new Error(
        `cannot reach the chain at ${url}: ${err.message}; is the devnet (\`minerflow devnet\`) or the subtensor node running?`,
      );
    });
    entry = { api, provider, users: 0 };
    apis.set(url, entry);
  }
  entry.users += 1;
  return { api: await entry.api, provider: entry.provider };
}

async function releaseApi(url: string): Promise<void> {
  const entry = apis.get(url);
  if (!entry || --entry.users > 0) return;
  apis.delete(url);
  await (await entry.api.catch(() => undefined))?.disconnect();
}

/**
 * Disconnects every endpoint this process opened, whoever holds it. For process shutdown: an open
 * WebSocket (and its reconnect timer) would otherwise keep Node running.
 */
export async function disconnectAllChains(): Promise<void> {
  const entries = [...apis.values()];
  apis.clear();
  await Promise.allSettled(entries.map(async (e) => (await e.api.catch(() => undefined))?.disconnect()));
}

export class SubtensorChain implements Chain {
  readonly name: string;
  private customRpc?: Promise<Set<string>>;
  private closed = false;
  private phaseService?: PhaseService;
  private lastPhaseSchedule?: { origin: number; phases: PhaseSpec[] };

  private constructor(
    private readonly opts: SubtensorChainOptions,
    private readonly api: ApiPromise,
    private readonly provider: WsProvider, // for the devnet's own RPC methods, which @polkadot/api does not decorate
  ) {
    this.name = `subtensor ${opts.url}`;
  }

  static async connect(opts: SubtensorChainOptions): Promise<SubtensorChain> {
    if (!/^wss?:\/\//.test(opts.url)) throw new Error(`chain URL '${opts.url}' must start with ws:// or wss://`);
    const { api, provider } = await acquireApi(opts.url);
    return new SubtensorChain(opts, api, provider);
  }

  async blockNumber(): Promise<number> {
    await this.connected();
    return (await this.api.rpc.chain.getHeader()).number.toNumber();
  }

  async schedule(): Promise<ChainSchedule> {
    await this.connected();
    const devnet = (await this.rpcMethods()).has('minerflow_schedule');
    const nominalMs = devnet
      ? ((await this.provider.send('minerflow_schedule', [])) as { blockMs: number }).blockMs
      : this.opts.blockMs;
    const { origin, phases } = await this.phaseSchedule(devnet);
    // The head last, so the block and its time are as fresh as can be; the head's own timestamp:
    // block times are then projected from when it was made, not from now.
    const header = await this.api.rpc.chain.getHeader();
    const block = header.number.toNumber();
    const atMs = await this.timestampAt(header.hash);
    return { block, atMs, blockMs: await this.observedBlockMs(block, atMs, nominalMs), origin, phases };
  }

  async validatorWhitelist(): Promise<string[]> {
    await this.phaseSchedule((await this.rpcMethods()).has('minerflow_schedule'));
    if (!this.phaseService) throw new Error(`no phase service for ${this.opts.url}: MINERFLOW_PHASES fixes the phases`);
    return this.phaseService.validatorWhitelist();
  }

  /**
   * Phases and origin from the phase service when there is one (the devnet serves it on its own
   * port), else from configuration. A service that fails after its retries falls back to what it
   * said last, if it said anything: the schedule changes only with a subnet release.
   */
  private async phaseSchedule(devnet: boolean): Promise<{ origin: number; phases: PhaseSpec[] }> {
    const url =
      this.opts.ownerUrl ??
      (devnet ? this.opts.url.replace(/^ws/, 'http') : this.opts.phasesFixed ? undefined : CONNITO_OWNER_URL);
    if (!url) return { origin: this.opts.origin ?? 0, phases: this.opts.phases };
    this.phaseService ??= new PhaseService(url, { timeoutMs: 5000, retries: 2, backoffMs: 500 });
    try {
      this.lastPhaseSchedule = await this.phaseService.schedule();
    } catch (err) {
      if (!this.lastPhaseSchedule) throw err;
    }
    return this.lastPhaseSchedule;
  }

  /**
   * The block time the chain is actually making, from the timestamps of the head and of a block
   * OBSERVED_BLOCKS back: real chains (and a devnet on a busy host) drift from the nominal time,
   * and a deadline projected with the nominal one would stop training too early or too late.
   * Falls back to the nominal time when there is too little history or the chain cannot say.
   */
  private async observedBlockMs(head: number, headMs: number, nominalMs: number): Promise<number> {
    const back = Math.min(OBSERVED_BLOCKS, head - 1); // block 0 carries no timestamp
    if (back < 2) return nominalMs;
    try {
      const thenMs = await this.timestampAt(await this.api.rpc.chain.getBlockHash(head - back));
      const observed = (headMs - thenMs) / back;
      // A chain that stalled or raced for a moment is not a new block time: stay within 0.5–2× nominal.
      return observed > 0 ? Math.min(2 * nominalMs, Math.max(nominalMs / 2, observed)) : nominalMs;
    } catch {
      return nominalMs; // pruned history: the nominal time is the best we know
    }
  }

  private async timestampAt(hash: Parameters<ApiPromise['at']>[0]): Promise<number> {
    return ((await (await this.api.at(hash)).query.timestamp.now()) as unknown as { toNumber(): number }).toNumber();
  }

  async uid(address: string, netuid: number): Promise<number | null> {
    await this.connected();
    const uid = (await this.api.query.subtensorModule.uids(netuid, address)) as unknown as {
      isSome: boolean;
      unwrap(): { toNumber(): number };
    };
    return uid.isSome ? uid.unwrap().toNumber() : null;
  }

  async commit(signer: KeyringPair, netuid: number, payload: string): Promise<{ block: number }> {
    await this.connected();
    const bytes = Buffer.from(payload, 'utf8');
    if (bytes.length > MAX_RAW_COMMITMENT_BYTES) {
      throw new ChainRejectedError(
        `commitment of ${bytes.length} bytes exceeds subtensor's limit of ${MAX_RAW_COMMITMENT_BYTES} (Data::Raw128 is the largest field)`,
      );
    }
    const tx = this.api.tx.commitments.setCommitment(netuid, { fields: [{ [`Raw${bytes.length}`]: bytes }] });
    const blockHash = await this.submit(tx, signer);
    const block = (await this.api.rpc.chain.getHeader(blockHash)).number.toNumber();
    const back = await this.commitment(signer.address, netuid);
    if (!back || Buffer.compare(Buffer.from(back.payload, 'utf8'), bytes) !== 0) {
      throw new Error(
        `commitment read back from ${this.opts.url} for ${signer.address} on netuid ${netuid} differs from what was sent (block ${block})`,
      );
    }
    return { block };
  }

  async commitment(address: string, netuid: number): Promise<{ block: number; payload: string } | null> {
    await this.connected();
    const value = (await this.api.query.commitments.commitmentOf(netuid, address)) as unknown as OptionalRegistration;
    return value.isNone ? null : decodeRegistration(value.unwrap());
  }

  async commitments(netuid: number, block?: number): Promise<Map<string, { block: number; payload: string }>> {
    const at = await this.at(block);
    const entries = (await at.query.commitments.commitmentOf.entries(netuid)) as unknown as [
      { args: [Codec, Codec] },
      OptionalRegistration,
    ][];
    const out = new Map<string, { block: number; payload: string }>();
    for (const [key, value] of entries)
      if (!value.isNone) out.set(key.args[1].toString(), decodeRegistration(value.unwrap()));
    return out;
  }

  async neurons(netuid: number, block?: number): Promise<Neuron[]> {
    const at = await this.at(block);
    const q = at.query.subtensorModule;
    const n = ((await q.subnetworkN(netuid)) as unknown as { toNumber(): number }).toNumber();
    const lastUpdate = (await q.lastUpdate(netuid)) as unknown as { toNumber(): number }[];
    const out: Neuron[] = [];
    for (let uid = 0; uid < n; uid++) {
      const hotkey = ((await q.keys(netuid, uid)) as Codec).toString();
      // Stake in rao: per subnet (alpha) on runtimes that have it, else the hotkey's total.
      const rao = q.totalHotkeyAlpha ? await q.totalHotkeyAlpha(hotkey, netuid) : await q.totalHotkeyStake(hotkey);
      out.push({
        hotkey,
        uid,
        stake: Number(BigInt((rao as Codec).toString())) / 1e9,
        lastUpdate: lastUpdate[uid]?.toNumber() ?? 0,
      });
    }
    return out;
  }

  /** Storage as of `block` (the head when absent). */
  private async at(block?: number) {
    await this.connected();
    return block === undefined ? this.api : this.api.at(await this.api.rpc.chain.getBlockHash(block));
  }

  async score(address: string, netuid: number): Promise<ChainScore | null> {
    const uid = await this.uid(address, netuid);
    if (uid === null) return null;
    const [incentive, emission, stepBlock, tempo] = (await Promise.all([
      this.api.query.subtensorModule.incentive(netuid),
      this.api.query.subtensorModule.emission(netuid),
      // The block of the subnet's last epoch, the step that recomputed Incentive. (LastUpdate is
      // when each *validator* last set weights: a miner's own entry never moves.)
      this.api.query.subtensorModule.lastMechansimStepBlock(netuid),
      this.api.query.subtensorModule.tempo(netuid),
    ])) as unknown as [
      { toNumber(): number }[],
      { toNumber(): number }[],
      { toNumber(): number },
      { toNumber(): number },
    ];
    const updatedAtBlock = stepBlock.toNumber();
    if (updatedAtBlock === 0) return null; // no epoch has run on this subnet yet
    const total = incentive.reduce((a, v) => a + v.toNumber(), 0);
    const details = (await this.rpcMethods()).has('minerflow_validatorReport')
      ? (((await this.provider.send('minerflow_validatorReport', [netuid, address])) as ChainScore['details'] | null) ??
        undefined)
      : undefined;
    return {
      uid,
      updatedAtBlock,
      incentiveShare: total > 0 ? (incentive[uid]?.toNumber() ?? 0) / total : 0,
      emissionRao: emission[uid]?.toNumber() ?? 0,
      tempo: tempo.toNumber(),
      details: details && { ...details, loss: details.loss ?? NaN, baselineLoss: details.baselineLoss ?? NaN }, // JSON has no NaN
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await releaseApi(this.opts.url);
  }

  /** While the provider reconnects after a dropped socket, waits for it rather than failing at once. */
  private async connected(): Promise<void> {
    const deadline = Date.now() + (this.opts.reconnectWaitMs ?? 10_000);
    while (!this.provider.isConnected) {
      if (this.closed) throw new Error(`chain adapter for ${this.opts.url} is closed`);
      if (Date.now() > deadline)
        throw new Error(
          `not connected to the chain at ${this.opts.url} (still reconnecting after ${this.opts.reconnectWaitMs ?? 10_000} ms)`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private rpcMethods(): Promise<Set<string>> {
    this.customRpc ??= this.api.rpc.rpc.methods().then((m) => new Set(m.methods.map((x) => x.toString())));
    return this.customRpc;
  }

  /** Signs, submits and waits for inclusion; returns the block hash or throws naming the chain's error. */
  private submit(
    tx: ReturnType<ApiPromise['tx']['commitments']['setCommitment']>,
    signer: KeyringPair,
  ): Promise<string> {
    const timeoutMs = this.opts.inclusionTimeoutMs ?? 60_000;
    return new Promise<string>((resolve, reject) => {
      let unsubscribe: (() => void) | undefined;
      const finish = (err: Error | null, hash?: string) => {
        clearTimeout(timer);
        unsubscribe?.();
        if (err) reject(err);
        else resolve(hash!);
      };
      const timer = setTimeout(
        () => finish(new Error(`commitment not included in a block within ${timeoutMs} ms on ${this.opts.url}`)),
        timeoutMs,
      );
      // nonce -1: the node's next index, counting our transactions still in its pool.
      tx.signAndSend(signer, { nonce: -1 }, (result) => {
        const { status, dispatchError } = result;
        if (status.isInBlock || status.isFinalized) {
          if (dispatchError) finish(this.explain(dispatchError));
          else finish(null, (status.isInBlock ? status.asInBlock : status.asFinalized).toHex());
        } else if (status.isInvalid || status.isDropped || status.isUsurped) {
          finish(new Error(`commitment transaction ${status.type.toLowerCase()} by ${this.opts.url} before inclusion`));
        }
      })
        .then((unsub) => {
          unsubscribe = unsub;
        })
        .catch((err: Error) => finish(rejection(err)));
    });
  }

  private explain(err: DispatchError): Error {
    if (err.isModule) {
      const meta = this.api.registry.findMetaError(err.asModule);
      return new ChainRejectedError(
        `the chain rejected the commitment: ${meta.section}.${meta.name} (${meta.docs.join(' ').trim()})`,
      );
    }
    return new ChainRejectedError(`the chain rejected the commitment: ${err.type}`);
  }
}

/**
 * The pool's answer to a submission: a bad signature or an invalid call will not succeed on retry;
 * a nonce clash (another of our transactions in flight) or a stale one can.
 */
function rejection(err: Error): Error {
  const m = /^(\d+): (.*)$/s.exec(err.message);
  const code = m ? Number(m[1]) : undefined;
  if (code === 1010 && !/outdated|future|stale|ancient/i.test(err.message))
    return new ChainRejectedError(`the chain refused the commitment transaction: ${m![2]}`);
  return new Error(`commitment transaction not accepted: ${err.message}`);
}
