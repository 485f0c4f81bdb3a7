// The devnet's chain: blocks on a timer, storage encoded exactly as subtensor encodes it (keys and
// values built from the real metadata), a transaction pool that checks what subtensor's pool checks
// (format, sr25519 signature over the signing payload with subtensor's signed extensions, nonce,
// mortality), and one runtime call: Commitments.set_commitment, with the pallet's own errors. A local
// validator scores each round's commitments and writes Incentive, Emission and LastUpdate. The
// runtime APIs (state_call) are in runtime-api.ts, the genesis state in genesis.ts.
// Simplifications, all invisible to @polkadot/api: the state and extrinsics roots are blake2-256
// digests of the sorted entries (not Merkle tries), blocks are final one block later, no fees are charged.
import type { Extrinsic, Header, MultiSignature } from '@polkadot/types/interfaces';
import type { Codec } from '@polkadot/types/types';
import { bnToU8a, compactToU8a, hexToU8a, u8aConcat, u8aToHex, u8aToU8a } from '@polkadot/util';
import {
  blake2AsHex,
  blake2AsU8a,
  cryptoWaitReady,
  decodeAddress,
  ed25519Verify,
  sr25519Verify,
} from '@polkadot/util-crypto';
import { phaseWindow, roundOf, cycleLength, type PhaseSpec } from '../../subnets/connito/phases';
import type { ChainScore } from '../chain/chain';
import type { LocalValidator, Submission } from '../../subnets/connito/validator';
import { genesisState, type Registration } from './genesis';
import {
  metadataAtVersion,
  metadataVersions,
  subtensorTypes,
  type SubtensorNetwork,
  type SubtensorTypes,
} from './metadata';
import { RuntimeApi, RuntimeCallError } from './runtime-api';
import { StorageCodec, type State } from './storage';

export interface DevnetChainOptions {
  blockMs: number;
  phases: PhaseSpec[];
  /** Hotkeys registered at genesis (uids in this order per netuid). */
  register: Registration[];
  validator?: LocalValidator;
  validatorHotkeys?: string[]; // the local validator's hotkeys, whitelisted by the owner's phase service
  network?: SubtensorNetwork;
  /** Commitment space per hotkey per epoch (Tempo blocks); each call costs max(100, its bytes). */
  spacePerEpoch?: number;
  log?: (msg: string) => void;
}

/** A JSON-RPC error as substrate's author_* methods return it (codes from sc-rpc-api). */
export class DevnetRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: string,
  ) {
    super(data ? `${message}: ${data}` : message);
  }
}

/** What author_submitAndWatchExtrinsic reports, in substrate's JSON form. */
export type TxStatus = 'ready' | 'invalid' | 'dropped' | { inBlock: string } | { finalized: string };

export interface DevnetBlock {
  number: number;
  hash: string;
  header: Header;
  extrinsics: `0x${string}`[];
  storage: Map<string, string>; // key hex → SCALE value hex, the state after this block
}

interface PoolTx {
  hex: `0x${string}`;
  hash: string;
  ext: Extrinsic;
  signer: string;
  nonce: number;
  death: number; // first block at which the transaction is no longer valid (mortality)
  onStatus: (status: TxStatus) => void;
}

type ValidatorDetails = NonNullable<ChainScore['details']>;

const METADATA_API_ID = '0x37e397fc7c91f5e4'; // blake2-64 of "Metadata", as in RuntimeVersion.apis
const MAX_RAW_BYTES = 128; // the largest Data variant is Raw128
const MIN_COMMIT_COST = 100;
const KEPT_BLOCKS = 2048;
const AURA_ENGINE = Uint8Array.from([0x61, 0x75, 0x72, 0x61]); // 'aura': subtensor authors blocks with Aura
const EMISSION_PER_ROUND_RAO = 1_000_000_000; // 1 TAO split by incentive: a stand-in for the real emission

export class DevnetChain {
  readonly types: SubtensorTypes;
  private readonly store: StorageCodec;
  private readonly runtimeApi: RuntimeApi;
  readonly genesis: DevnetBlock;
  private readonly blocks: DevnetBlock[] = [];
  private readonly byHash = new Map<string, DevnetBlock>();
  private pool: PoolTx[] = [];
  private readonly awaitingFinality: PoolTx[] = [];
  private readonly history: { netuid: number; hotkey: string; block: number; payload: string }[] = [];
  private readonly usedSpace = new Map<string, { epoch: number; used: number }>();
  private readonly pendingWrites: ((storage: Map<string, string>, block: number) => void)[] = [];
  private readonly validatedRound = new Map<number, number>();
  private readonly validating = new Set<number>();
  private readonly reports = new Map<string, ValidatorDetails>();
  private readonly listeners = new Set<(block: DevnetBlock) => void>();
  private readonly netuids: number[];
  private timer?: NodeJS.Timeout;
  private readonly log: (msg: string) => void;

  private constructor(readonly opts: DevnetChainOptions) {
    this.log = opts.log ?? (() => undefined);
    this.types = subtensorTypes(opts.network ?? 'finney-365');
    this.netuids = [...new Set(opts.register.map((r) => r.netuid))];
    this.store = new StorageCodec(this.types);
    this.runtimeApi = new RuntimeApi(this.types, this.store);
    // Tempo (a u16) is the phase cycle here, so the subnet's epoch and its rounds line up.
    const storage = genesisState(this.store, opts.register, Math.min(cycleLength(opts.phases), 0xffff));
    this.genesis = this.seal(0, '0x' + '00'.repeat(32), [], storage, 0);
  }

  /** A devnet at genesis (call start() to produce blocks). */
  static async create(opts: DevnetChainOptions): Promise<DevnetChain> {
    await cryptoWaitReady();
    return new DevnetChain(opts);
  }

  start(): void {
    this.timer ??= setInterval(() => {
      try {
        this.produceBlock();
      } catch (err) {
        this.log(`devnet: could not produce a block: ${(err as Error).stack ?? String(err)}`); // the next tick tries again
      }
    }, this.opts.blockMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const tx of this.pool) tx.onStatus('dropped');
    this.pool = [];
  }

  get registry() {
    return this.types.registry;
  }

  head(): DevnetBlock {
    return this.blocks[this.blocks.length - 1];
  }

  finalized(): DevnetBlock {
    return this.blocks[this.blocks.length - 2] ?? this.genesis;
  }

  block(hash?: string | null): DevnetBlock | undefined {
    return hash ? this.byHash.get(hash.toLowerCase()) : this.head();
  }

  blockAt(number: number): DevnetBlock | undefined {
    if (number === 0) return this.genesis;
    const first = this.blocks[0].number;
    return this.blocks[number - first];
  }

  onBlock(fn: (block: DevnetBlock) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  schedule(): { block: number; blockMs: number; origin: number; phases: PhaseSpec[] } {
    return { block: this.head().number, blockMs: this.opts.blockMs, origin: 0, phases: this.opts.phases };
  }

  /** The hotkeys the subnet owner vouches for as validators (Connito's /get_validator_whitelist). */
  validatorWhitelist(): string[] {
    return [...(this.opts.validatorHotkeys ?? [])];
  }

  validatorReport(netuid: number, address: string): ValidatorDetails | null {
    return this.reports.get(`${netuid}/${address}`) ?? null;
  }

  runtimeVersion() {
    const m = this.types.material;
    return {
      specName: m.specName,
      implName: m.specName,
      authoringVersion: 1,
      specVersion: m.specVersion,
      implVersion: 1,
      apis: this.runtimeApis(),
      transactionVersion: m.txVersion,
      stateVersion: 1,
    };
  }

  /** The runtime APIs as RuntimeVersion lists them: the runtime's own list where the metadata carries it. */
  private runtimeApis(): [string, number][] {
    if (this.types.metadata.version < 15) return [[METADATA_API_ID, 2]]; // as subtensor lists it
    const version = this.types.decorated.consts.system.version as unknown as {
      apis: [Codec, { toNumber(): number }][];
    };
    return version.apis.map(([id, v]) => [id.toHex(), v.toNumber()]);
  }

  /** What state_getMetadata serves: the oldest version offered (a node serves v14 there; from v16 the devnet offers v15 and v16). */
  metadataHex(): string {
    return u8aToHex(metadataAtVersion(this.types, metadataVersions(this.types)[0]));
  }

  /** state_call at a block: the runtime APIs of runtime-api.ts, with the node's error for the others. */
  runtimeCall(method: string, args: string, at?: string | null): string {
    const block = this.block(at);
    if (!block) throw new DevnetRpcError(4003, 'Client error', `block ${String(at)} is unknown or pruned`);
    try {
      return u8aToHex(this.runtimeApi.call(method, hexToU8a(args), block.storage, block.number));
    } catch (err) {
      if (err instanceof RuntimeCallError)
        throw new DevnetRpcError(4003, 'Client error', `Execution failed: ${err.message}`);
      throw err;
    }
  }

  /** The next nonce for `address`: its account nonce plus its transactions waiting in the pool. */
  nextIndex(address: string): number {
    let nonce = this.accountNonce(this.head().storage, address);
    while (this.pool.some((tx) => tx.signer === address && tx.nonce === nonce)) nonce += 1;
    return nonce;
  }

  pending(): string[] {
    return this.pool.map((tx) => tx.hex);
  }

  /** Checks an extrinsic as the transaction pool would and queues it; returns its hash. */
  submit(hex: string, onStatus: (status: TxStatus) => void = () => undefined): string {
    let ext: Extrinsic;
    try {
      ext = this.registry.createType('Extrinsic', hex);
    } catch (err) {
      throw new DevnetRpcError(1001, 'Extrinsic has invalid format', (err as Error).message);
    }
    if (ext.toHex() !== hex.toLowerCase())
      throw new DevnetRpcError(1001, 'Extrinsic has invalid format', 'bytes left over after decoding');
    if (!ext.isSigned)
      throw new DevnetRpcError(
        1011,
        'Unknown Transaction Validity',
        'Could not find an unsigned validator for the unsigned transaction',
      );
    const call = `${ext.method.section}.${ext.method.method}`;
    if (call !== 'commitments.setCommitment') {
      throw new DevnetRpcError(
        1010,
        'Invalid Transaction',
        `Transaction call is not expected (the devnet executes only commitments.setCommitment, not ${call})`,
      );
    }
    const hash = ext.hash.toHex();
    if (this.pool.some((tx) => tx.hash === hash)) throw new DevnetRpcError(1013, 'Transaction Already Imported');
    const signer = ext.signer.toString();
    const nonce = ext.nonce.toNumber();
    const head = this.head();
    if (nonce < this.accountNonce(head.storage, signer))
      throw new DevnetRpcError(1010, 'Invalid Transaction', 'Transaction is outdated');
    if (this.pool.some((tx) => tx.signer === signer && tx.nonce === nonce)) {
      throw new DevnetRpcError(
        1014,
        'Priority is too low: (0 vs 0)',
        'The transaction has too low priority to replace another transaction already in the pool.',
      );
    }
    // Validated in the context of the next block, as substrate's pool does.
    const current = head.number + 1;
    let birthHash = this.genesis.hash;
    let death = Number.MAX_SAFE_INTEGER;
    if (ext.era.isMortalEra) {
      const birth = this.blockAt(ext.era.asMortalEra.birth(current));
      if (!birth) throw new DevnetRpcError(1010, 'Invalid Transaction', 'Transaction has an ancient birth block');
      birthHash = birth.hash;
      death = ext.era.asMortalEra.death(current);
    }
    if (!this.signatureValid(ext, signer, birthHash))
      throw new DevnetRpcError(1010, 'Invalid Transaction', 'Transaction has a bad signature');
    this.pool.push({ hex: hex.toLowerCase() as `0x${string}`, hash, ext, signer, nonce, death, onStatus });
    setImmediate(() => onStatus('ready'));
    return hash;
  }

  /** Storage value at a block (head by default), or null when unset. */
  storage(key: string, at?: string | null): string | null | undefined {
    const block = this.block(at);
    if (!block) return undefined;
    return block.storage.get(key.toLowerCase()) ?? null;
  }

  keysPaged(prefix: string, count: number, startKey: string | undefined, at?: string | null): string[] | undefined {
    const block = this.block(at);
    if (!block) return undefined;
    return [...block.storage.keys()]
      .filter((k) => k.startsWith(prefix.toLowerCase()) && (!startKey || k > startKey.toLowerCase()))
      .sort()
      .slice(0, count);
  }

  // ---- blocks

  /** One block stamped `now` (the timer's tick; tests call it to make a chain of their own pace). */
  produceBlock(now = Date.now()): void {
    const parent = this.head();
    const number = parent.number + 1;
    const storage = new Map(parent.storage);
    this.put(storage, 'system', 'number', [number], number);
    this.put(storage, 'system', 'parentHash', [], parent.hash);
    this.put(storage, 'timestamp', 'now', [], now);
    for (const write of this.pendingWrites.splice(0)) write(storage, number);

    const timestampCall = this.types.decorated.tx.timestamp.set(now);
    const extrinsics = [this.registry.createType('Extrinsic', timestampCall).toHex()];
    const events = [this.systemEvent(0, 'ExtrinsicSuccess', { dispatchInfo: dispatchInfo('Mandatory') })];
    const included: PoolTx[] = [];
    // Apply each sender's transactions in nonce order; the rest wait for a later block.
    for (let progressed = true; progressed;) {
      progressed = false;
      for (const tx of [...this.pool]) {
        if (number >= tx.death) {
          this.pool.splice(this.pool.indexOf(tx), 1);
          tx.onStatus('invalid');
          continue;
        }
        if (tx.nonce !== this.accountNonce(storage, tx.signer)) continue;
        this.pool.splice(this.pool.indexOf(tx), 1);
        const index = extrinsics.length;
        const before = new Map(storage);
        let error: string | null;
        try {
          this.bumpNonce(storage, tx.signer);
          error = this.setCommitment(tx, storage, number, index, events);
        } catch (err) {
          // A bug of ours, not the sender's: drop the transaction, keep the block and the chain going.
          storage.clear();
          for (const [k, v] of before) storage.set(k, v);
          tx.onStatus('invalid');
          this.log(
            `devnet: block ${number}: dropped a transaction from ${tx.signer} that failed to apply: ${(err as Error).message}`,
          );
          continue;
        }
        extrinsics.push(tx.hex);
        if (error) {
          const pallet = this.pallet('Commitments');
          const errorIndex = this.errorIndex('Commitments', error);
          events.push(
            this.systemEvent(index, 'ExtrinsicFailed', {
              dispatchError: {
                Module: { index: pallet.index.toNumber(), error: u8aToHex(Uint8Array.from([errorIndex, 0, 0, 0])) },
              },
              dispatchInfo: dispatchInfo('Normal'),
            }),
          );
          this.log(`devnet: block ${number}: commitments.setCommitment by ${tx.signer} failed: Commitments.${error}`);
        } else {
          events.push(this.systemEvent(index, 'ExtrinsicSuccess', { dispatchInfo: dispatchInfo('Normal') }));
        }
        included.push(tx);
        progressed = true;
      }
    }
    storage.set(this.key('system', 'events', []), u8aToHex(u8aConcat(compactToU8a(events.length), ...events)));
    const block = this.seal(number, parent.hash, extrinsics, storage, now);
    // Finality trails by one block (as GRANDPA trails the best block): the parent is final now.
    for (const tx of this.awaitingFinality.splice(0)) tx.onStatus({ finalized: parent.hash });
    for (const tx of included) tx.onStatus({ inBlock: block.hash });
    this.awaitingFinality.push(...included);
    for (const fn of this.listeners) fn(block);
    this.maybeValidate(number);
  }

  private seal(
    number: number,
    parentHash: string,
    extrinsics: `0x${string}`[],
    storage: Map<string, string>,
    nowMs: number,
  ): DevnetBlock {
    const entries = [...storage.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const stateRoot = blake2AsHex(u8aConcat(...entries.flatMap(([k, v]) => [u8aToU8a(k), u8aToU8a(v)])));
    const extrinsicsRoot = blake2AsHex(this.registry.createType('Vec<Bytes>', extrinsics).toU8a());
    const slot = bnToU8a(Math.floor(nowMs / this.opts.blockMs), { bitLength: 64, isLe: true });
    const header: Header = this.registry.createType('Header', {
      parentHash,
      number,
      stateRoot,
      extrinsicsRoot,
      digest: { logs: [{ PreRuntime: [AURA_ENGINE, u8aConcat(compactToU8a(slot.length), slot)] }] }, // a Uint8Array for Bytes carries its length prefix
    });
    const block: DevnetBlock = { number, hash: header.hash.toHex(), header, extrinsics, storage };
    this.blocks.push(block);
    this.byHash.set(block.hash, block);
    if (this.blocks.length > KEPT_BLOCKS) {
      const dropped = this.blocks.shift()!;
      if (dropped.number > 0) this.byHash.delete(dropped.hash); // genesis stays reachable by hash
    }
    return block;
  }

  // ---- the one runtime call

  /** Commitments.set_commitment: returns the pallet error's name, or null on success. */
  private setCommitment(
    tx: PoolTx,
    storage: Map<string, string>,
    number: number,
    index: number,
    events: Uint8Array[],
  ): string | null {
    const [netuidArg, info] = tx.ext.method.args as unknown as [
      Codec & { toNumber(): number },
      Codec & { fields: (Codec & { isNone: boolean; value: Codec })[] },
    ];
    const netuid = netuidArg.toNumber();
    const who = tx.signer;
    if (!this.get(storage, 'subtensorModule', 'uids', [netuid, who])) return 'AccountNotAllowedCommit';
    const maxFields = (
      this.types.decorated.consts.commitments.maxFields as unknown as { toNumber(): number }
    ).toNumber();
    if (info.fields.length > maxFields) return 'TooManyFieldsInCommitmentInfo';
    const raw = info.fields.map((f) => (f.isNone ? new Uint8Array() : f.value.toU8a(true)));
    const bytes = raw.reduce((a, r) => a + r.length, 0);
    if (bytes > MAX_RAW_BYTES) return 'TooManyFieldsInCommitmentInfo';
    // Subtensor limits space per epoch (SpaceLimitExceeded); spec 219's metadata has only a rate-limit error.
    const tempo = Number(this.get(storage, 'subtensorModule', 'tempo', [netuid])?.toString() ?? 360);
    const epoch = Math.floor(number / tempo);
    const spaceKey = `${netuid}/${who}`;
    const used = this.usedSpace.get(spaceKey);
    const usedNow = used && used.epoch === epoch ? used.used : 0;
    const cost = Math.max(MIN_COMMIT_COST, bytes);
    if (usedNow + cost > (this.opts.spacePerEpoch ?? 3100))
      return this.hasError('Commitments', 'SpaceLimitExceeded')
        ? 'SpaceLimitExceeded'
        : 'CommitmentSetRateLimitExceeded';
    this.usedSpace.set(spaceKey, { epoch, used: usedNow + cost });

    this.put(storage, 'commitments', 'commitmentOf', [netuid, who], { deposit: 0, block: number, info });
    this.put(storage, 'commitments', 'lastCommitment', [netuid, who], number);
    events.push(this.palletEvent(index, 'Commitments', 'Commitment', { netuid, who }));
    this.history.push({ netuid, hotkey: who, block: number, payload: Buffer.from(u8aConcat(...raw)).toString('utf8') });
    this.log(`devnet: block ${number}: commitment of ${who} on netuid ${netuid} (${bytes} B)`);
    return null;
  }

  // ---- the local validator

  /** Once a round's Validate phase has begun, scores its submissions (in the background). */
  private maybeValidate(number: number): void {
    const validator = this.opts.validator;
    if (!validator) return;
    const sched = { origin: 0, phases: this.opts.phases };
    for (const netuid of this.netuids) {
      let round = roundOf(sched, number);
      if (number < phaseWindow(sched, round, 'Validate').start) round -= 1;
      if (round < 0 || (this.validatedRound.get(netuid) ?? -1) >= round || this.validating.has(netuid)) continue;
      const c1 = phaseWindow(sched, round, 'MinerCommit1');
      const c2 = phaseWindow(sched, round, 'MinerCommit2');
      const subs = new Map<string, Submission>();
      for (const h of this.history) {
        if (h.netuid !== netuid) continue;
        const sub = subs.get(h.hotkey) ?? { hotkey: h.hotkey };
        if (h.block >= c1.start && h.block < c1.end) sub.commit1 = { block: h.block, payload: h.payload };
        else if (h.block >= c1.end && h.block < c2.end) sub.commit2 = { block: h.block, payload: h.payload };
        subs.set(h.hotkey, sub);
      }
      const inRound = [...subs.values()].filter((s) => s.commit1 || s.commit2);
      if (!inRound.length) {
        this.validatedRound.set(netuid, round);
        // Nothing to score, but the validator still sets weights each round.
        if (this.opts.validatorHotkeys?.length)
          this.pendingWrites.push((storage, block) => this.markValidatorsUpdated(storage, block, netuid));
        continue;
      }
      this.validating.add(netuid);
      validator(round, inRound)
        .then((results) => {
          this.pendingWrites.push((storage, block) => this.writeScores(storage, block, netuid, results));
          this.validatedRound.set(netuid, round);
        })
        .catch((err: Error) =>
          this.log(
            `devnet: validator failed on round ${round} of netuid ${netuid}: ${err.message}; retrying next block`,
          ),
        )
        .finally(() => this.validating.delete(netuid));
    }
  }

  private writeScores(
    storage: Map<string, string>,
    block: number,
    netuid: number,
    results: Map<string, ValidatorDetails>,
  ): void {
    const n = Number(this.get(storage, 'subtensorModule', 'subnetworkN', [netuid])?.toString() ?? 0);
    const total = [...results.values()].reduce((a, r) => a + r.reward, 0);
    const incentive = new Array<number>(n).fill(0);
    const emission = new Array<number>(n).fill(0);
    const previous =
      (this.get(storage, 'subtensorModule', 'lastUpdate', [netuid]) as unknown as { toNumber(): number }[] | null) ??
      [];
    const lastUpdate = Array.from({ length: n }, (_, i) => previous[i]?.toNumber() ?? 0);
    for (const [hotkey, details] of results) {
      const u = (
        this.get(storage, 'subtensorModule', 'uids', [netuid, hotkey]) as unknown as { toNumber(): number } | null
      )?.toNumber();
      if (u === undefined || u >= n) continue;
      const share = total > 0 ? details.reward / total : 0;
      incentive[u] = Math.round(share * 65535);
      emission[u] = Math.round(share * EMISSION_PER_ROUND_RAO);
      lastUpdate[u] = block;
      this.reports.set(`${netuid}/${hotkey}`, details);
    }
    this.markValidatorsUpdated(storage, block, netuid, lastUpdate);
    this.put(storage, 'subtensorModule', 'incentive', [netuid], incentive);
    this.put(storage, 'subtensorModule', 'emission', [netuid], emission);
    this.put(storage, 'subtensorModule', 'lastUpdate', [netuid], lastUpdate);
    // Subtensor records the block of each epoch (the step that recomputes Incentive) here.
    this.put(storage, 'subtensorModule', 'lastMechansimStepBlock', [netuid], block);
    this.log(`devnet: block ${block}: validator set incentive on netuid ${netuid}: [${incentive.join(', ')}]`);
  }

  /**
   * The validator set weights at `block`: its own LastUpdate is what makes it a validator to miners
   * (Connito counts a whitelisted hotkey as one only while its weights are fresher than a cycle).
   */
  private markValidatorsUpdated(storage: State, block: number, netuid: number, lastUpdate?: number[]): void {
    const n = Number(this.get(storage, 'subtensorModule', 'subnetworkN', [netuid])?.toString() ?? 0);
    const current =
      lastUpdate ??
      Array.from(
        { length: n },
        (_, i) =>
          ((this.get(storage, 'subtensorModule', 'lastUpdate', [netuid]) as unknown as
            { toNumber(): number }[] | null) ?? [])[i]?.toNumber() ?? 0,
      );
    for (const hotkey of this.opts.validatorHotkeys ?? []) {
      const u = (
        this.get(storage, 'subtensorModule', 'uids', [netuid, hotkey]) as unknown as { toNumber(): number } | null
      )?.toNumber();
      if (u !== undefined && u < n) current[u] = block;
    }
    if (!lastUpdate) this.put(storage, 'subtensorModule', 'lastUpdate', [netuid], current);
  }

  // ---- storage, events and signatures, all through the metadata

  private key(section: string, method: string, args: unknown[]): string {
    return this.store.key(section, method, args);
  }

  private put(storage: State, section: string, method: string, args: unknown[], value: unknown): void {
    this.store.put(storage, section, method, args, value);
  }

  /** The decoded value, or null when unset. */
  private get(storage: State, section: string, method: string, args: unknown[]): Codec | null {
    return this.store.get(storage, section, method, args);
  }

  private accountNonce(storage: Map<string, string>, address: string): number {
    const account = this.get(storage, 'system', 'account', [address]) as unknown as {
      nonce: { toNumber(): number };
    } | null;
    return account ? account.nonce.toNumber() : 0;
  }

  private bumpNonce(storage: Map<string, string>, address: string): void {
    const account = this.get(storage, 'system', 'account', [address]) as unknown as {
      nonce: { toNumber(): number };
      providers: { toNumber(): number };
    } | null;
    this.put(storage, 'system', 'account', [address], {
      nonce: (account?.nonce.toNumber() ?? 0) + 1,
      providers: account?.providers.toNumber() ?? 1,
    });
  }

  private pallet(name: string) {
    const p = this.types.metadata.asLatest.pallets.find((x) => x.name.toString() === name);
    if (!p) throw new Error(`devnet: the metadata has no pallet ${name}`);
    return p;
  }

  private hasError(palletName: string, error: string): boolean {
    const type = this.registry.lookup.getSiType(this.pallet(palletName).errors.unwrap().type);
    return type.def.asVariant.variants.some((v) => v.name.toString() === error);
  }

  private errorIndex(palletName: string, error: string): number {
    const type = this.registry.lookup.getSiType(this.pallet(palletName).errors.unwrap().type);
    const variant = type.def.asVariant.variants.find((v) => v.name.toString() === error);
    if (!variant) throw new Error(`devnet: pallet ${palletName} has no error ${error}`);
    return variant.index.toNumber();
  }

  /** A System.EventRecord: phase ApplyExtrinsic(index), pallet index + event, no topics. */
  private palletEvent(index: number, palletName: string, event: string, data: object): Uint8Array {
    const pallet = this.pallet(palletName);
    const eventType = this.registry.createLookupType(pallet.events.unwrap().type);
    const body = this.registry.createTypeUnsafe(eventType, [{ [event]: data }]).toU8a();
    const phase = u8aConcat(Uint8Array.from([0]), bnToU8a(index, { bitLength: 32, isLe: true }));
    return u8aConcat(phase, Uint8Array.from([pallet.index.toNumber()]), body, compactToU8a(0));
  }

  private systemEvent(index: number, event: string, data: object): Uint8Array {
    return this.palletEvent(index, 'System', event, data);
  }

  /** The sr25519 (or ed25519) signature over the signing payload, as the runtime's CheckedExtrinsic verifies it. */
  private signatureValid(ext: Extrinsic, signer: string, birthHash: string): boolean {
    if (ext.mode.toNumber() === 1) return false; // CheckMetadataHash: the devnet has no metadata digest to check against
    const m = this.types.material;
    const payload = this.registry.createType(
      'ExtrinsicPayload',
      {
        method: ext.method.toHex(),
        era: ext.era,
        nonce: ext.nonce,
        tip: ext.tip,
        mode: 0,
        specVersion: m.specVersion,
        transactionVersion: m.txVersion,
        genesisHash: this.genesis.hash,
        blockHash: birthHash,
        metadataHash: null,
      },
      { version: ext.version & 0x7f }, // the extrinsic version byte carries the "signed" bit
    );
    const full = payload.toU8a({ method: true });
    const message = full.length > 256 ? blake2AsU8a(full) : full;
    const publicKey = decodeAddress(signer);
    const sig = (ext.inner.signature as unknown as { multiSignature: MultiSignature }).multiSignature;
    try {
      if (sig.isSr25519) return sr25519Verify(message, sig.asSr25519, publicKey);
      if (sig.isEd25519) return ed25519Verify(message, sig.asEd25519, publicKey);
      return false;
    } catch {
      return false; // bytes that are not even a curve point: as bad as a wrong signature
    }
  }
}

function dispatchInfo(cls: 'Normal' | 'Mandatory') {
  return { weight: { refTime: 1_000_000, proofSize: 0 }, class: cls, paysFee: cls === 'Normal' ? 'Yes' : 'No' };
}
