// The embedded local chain: a block clock, a phase schedule, registrations, commitments and a local
// validator, persisted in one JSON file so every process on this host sees the same chain. It lets
// the whole cycle run with no network. (The subtensor adapter implements the same Chain port.)
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { KeyringPair } from '@polkadot/keyring/types';
import { MAX_COMMIT_BYTES } from '../../common/commitments';
import { phaseWindow, roundOf, type ChainSchedule, type PhaseSpec } from '../../common/phases';
import { ChainRejectedError, type Chain, type ChainScore } from './chain';

export interface Submission {
  hotkey: string;
  commit1?: { block: number; payload: string };
  commit2?: { block: number; payload: string };
}

/** Scores one round's submissions: loss per hotkey (NaN + reason when invalid). */
export type LocalValidator = (round: number, submissions: Submission[]) => Promise<Map<string, ChainScore['details'] & {}>>;

interface State {
  genesisMs: number;
  registered: Record<string, string[]>; // netuid → hotkeys (uid = index)
  commitments: Record<string, Record<string, { block: number; payload: string }>>;
  history: { netuid: number; hotkey: string; block: number; payload: string }[];
  incentive: Record<string, Record<string, number>>; // netuid → hotkey → u16
  details: Record<string, Record<string, ChainScore['details']>>;
  lastUpdate: Record<string, Record<string, number>>;
  validatedRound: Record<string, number>;
}

export interface LocalChainOptions {
  file: string;
  blockMs: number;
  phases: PhaseSpec[];
  /** Hotkeys registered on each netuid when the chain is created or opened. */
  register?: { netuid: number; address: string }[];
  validator?: LocalValidator;
}

export class LocalChain implements Chain {
  readonly name = 'local';

  private constructor(private readonly opts: LocalChainOptions) {}

  /** Opens (or creates, with genesis now) the chain in `opts.file` and applies the registrations. */
  static async open(opts: LocalChainOptions): Promise<LocalChain> {
    const chain = new LocalChain(opts);
    await chain.update(async () => undefined);
    return chain;
  }

  async schedule(): Promise<ChainSchedule> {
    const s = await this.read();
    const now = Date.now();
    return { block: this.blockAt(s, now), atMs: now, blockMs: this.opts.blockMs, origin: 0, phases: this.opts.phases };
  }

  async uid(address: string, netuid: number): Promise<number | null> {
    const s = await this.read();
    const i = (s.registered[netuid] ?? []).indexOf(address);
    return i < 0 ? null : i;
  }

  async commit(signer: KeyringPair, netuid: number, payload: string): Promise<{ block: number }> {
    const bytes = Buffer.byteLength(payload, 'utf8');
    const block = await this.update(async (s) => {
      if (!(s.registered[netuid] ?? []).includes(signer.address)) {
        throw new ChainRejectedError(`Commitments: hotkey ${signer.address} is not registered on netuid ${netuid}`);
      }
      if (bytes > MAX_COMMIT_BYTES) throw new ChainRejectedError(`Commitments.TooManyFieldsInCommitmentInfo: ${bytes} bytes > ${MAX_COMMIT_BYTES}`);
      const b = this.blockAt(s, Date.now());
      (s.commitments[netuid] ??= {})[signer.address] = { block: b, payload };
      s.history.push({ netuid, hotkey: signer.address, block: b, payload });
      return b;
    });
    const back = await this.commitment(signer.address, netuid);
    if (!back || back.payload !== payload) throw new Error(`commitment read back from the local chain differs from what was sent`);
    return { block };
  }

  async commitment(address: string, netuid: number): Promise<{ block: number; payload: string } | null> {
    const s = await this.read();
    return s.commitments[netuid]?.[address] ?? null;
  }

  async score(address: string, netuid: number): Promise<ChainScore | null> {
    await this.runValidator(netuid);
    const s = await this.read();
    const uid = (s.registered[netuid] ?? []).indexOf(address);
    const inc = s.incentive[netuid] ?? {};
    const last = s.lastUpdate[netuid]?.[address];
    if (uid < 0 || last === undefined) return null;
    const total = Object.values(inc).reduce((a, b) => a + b, 0);
    const d = s.details[netuid]?.[address];
    // JSON has no NaN: an invalid submission's loss comes back from the state file as null.
    const details = d && { ...d, loss: d.loss ?? NaN, baselineLoss: d.baselineLoss ?? NaN };
    return { uid, updatedAtBlock: last, incentiveShare: total > 0 ? (inc[address] ?? 0) / total : 0, details };
  }

  async close(): Promise<void> {}

  /** Scores the latest round whose Validate phase has begun, once. */
  private async runValidator(netuid: number): Promise<void> {
    if (!this.opts.validator) return;
    const s = await this.read();
    const sched = { origin: 0, phases: this.opts.phases };
    const block = this.blockAt(s, Date.now());
    let round = roundOf(sched, block);
    if (block < phaseWindow(sched, round, 'Validate').start) round -= 1;
    if (round < 0 || (s.validatedRound[netuid] ?? -1) >= round) return;
    const c1 = phaseWindow(sched, round, 'MinerCommit1');
    const c2 = phaseWindow(sched, round, 'MinerCommit2');
    const subs = new Map<string, Submission>();
    for (const h of s.history) {
      if (h.netuid !== netuid) continue;
      const sub = subs.get(h.hotkey) ?? { hotkey: h.hotkey };
      if (h.block >= c1.start && h.block < c1.end) sub.commit1 = { block: h.block, payload: h.payload };
      else if (h.block >= c1.end && h.block < c2.end) sub.commit2 = { block: h.block, payload: h.payload };
      subs.set(h.hotkey, sub);
    }
    const inRound = [...subs.values()].filter((x) => x.commit1 || x.commit2);
    const results = inRound.length ? await this.opts.validator(round, inRound) : new Map();
    await this.update(async (st) => {
      if ((st.validatedRound[netuid] ?? -1) >= round) return; // another process got there first
      const now = this.blockAt(st, Date.now());
      const rewards = [...results.values()].reduce((a, r) => a + r.reward, 0);
      st.incentive[netuid] = {};
      for (const [hotkey, d] of results) {
        st.incentive[netuid][hotkey] = rewards > 0 ? Math.round((d.reward / rewards) * 65535) : 0;
        (st.details[netuid] ??= {})[hotkey] = d;
        (st.lastUpdate[netuid] ??= {})[hotkey] = now;
      }
      st.validatedRound[netuid] = round;
    });
  }

  private blockAt(s: State, nowMs: number): number {
    return Math.max(0, Math.floor((nowMs - s.genesisMs) / this.opts.blockMs));
  }

  /** Readers need no lock: writers replace the file by rename, so a read sees a whole state. */
  private read(): Promise<State> {
    return this.load();
  }

  private async load(): Promise<State> {
    const text = await fs.readFile(this.opts.file, 'utf8');
    return JSON.parse(text) as State;
  }

  /** Read-modify-write under a lock folder; creates the chain (genesis now) on first use. */
  private async update<T>(fn: (s: State) => Promise<T>): Promise<T> {
    await fs.mkdir(path.dirname(this.opts.file), { recursive: true });
    const lock = this.opts.file + '.lock';
    await acquire(lock);
    try {
      let s: State;
      try {
        s = await this.load();
      } catch {
        s = { genesisMs: Date.now(), registered: {}, commitments: {}, history: [], incentive: {}, details: {}, lastUpdate: {}, validatedRound: {} };
      }
      for (const r of this.opts.register ?? []) {
        const list = (s.registered[r.netuid] ??= []);
        if (!list.includes(r.address)) list.push(r.address);
      }
      const result = await fn(s);
      const tmp = `${this.opts.file}.tmp-${process.pid}`;
      await fs.writeFile(tmp, JSON.stringify(s));
      await fs.rename(tmp, this.opts.file);
      return result;
    } finally {
      await fs.rm(lock, { recursive: true, force: true });
    }
  }
}

async function acquire(lock: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await fs.mkdir(lock);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await fs.stat(lock).then((st) => Date.now() - st.mtimeMs, () => 0);
      if (age > 120_000) await fs.rm(lock, { recursive: true, force: true }); // left by a killed process
      if (Date.now() > deadline) throw new Error(`local chain: could not lock ${lock} within 60 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
