// Distribute: which global model a round trains from. The validators publish it each round:
// {"m": signature of its hash} during ValidatorCommit1, then {"h","v","e","s","r","rv"} during
// ValidatorCommit2 (a hotkey holds one commitment, so each is read as of the end of its phase). As
// Connito's miners do (connito/shared/chain.py get_chain_commits, connito/shared/checkpoints.py
// filter_checkpoints), a validator is a whitelisted hotkey whose weights are fresher than one
// cycle; the model is the hash with the most validator stake behind it, among complete commits
// whose global version lies in the allowed range and whose signature verifies.
import { signatureVerify } from '@polkadot/util-crypto';
import type { Neuron } from '../../infra/chain/chain';
import { decodeSignatureCommit, decodeValidatorCommit, type ValidatorCommit } from './commitments';

export interface GlobalModel {
  hash: string;
  globalVer: number;
  repo: string;
  revision: string;
  expertGroup?: number;
  /** The validators that committed it, with their stake: who to download from, in order. */
  validators: { hotkey: string; stake: number }[];
  stake: number;
}

export interface DistributeInput {
  /** Commitments as of the end of the last ValidatorCommit1 (signatures). */
  signed: Map<string, { payload: string }>;
  /** Commitments as of the end of the last ValidatorCommit2 (hashes and locations). */
  located: Map<string, { payload: string }>;
  /** The metagraph at that block. */
  neurons: Neuron[];
  whitelist: string[];
  /** The block the commitments were read at (weight age is measured from it). */
  block: number;
  cycleLength: number;
  /** Global versions outside [min, max] are stale or from the future (Connito's get_allowed_version_range). */
  versions?: { min: number; max: number };
}

/** Why a hotkey's commitment was not counted: shown to the miner so an empty choice explains itself. */
export interface Excluded {
  hotkey: string;
  reason: string;
}

export function chooseGlobalModel(input: DistributeInput): { model?: GlobalModel; excluded: Excluded[] } {
  const whitelist = new Set(input.whitelist);
  const excluded: Excluded[] = [];
  const candidates: { hotkey: string; stake: number; commit: ValidatorCommit }[] = [];
  for (const n of input.neurons) {
    const located = input.located.get(n.hotkey);
    const no = (reason: string) => excluded.push({ hotkey: n.hotkey, reason });
    if (!located) {
      if (whitelist.has(n.hotkey)) no('a whitelisted validator with no commitment at the end of ValidatorCommit2');
      continue;
    }
    if (!whitelist.has(n.hotkey)) {
      no('not in the validator whitelist');
      continue;
    }
    const age = input.block - n.lastUpdate;
    if (age > input.cycleLength) {
      no(`stale weights (set ${age} blocks ago, more than a cycle of ${input.cycleLength})`);
      continue;
    }
    const commit = decodeValidatorCommit(located.payload);
    if (!commit) {
      no(`no hash commitment at the end of ValidatorCommit2: ${JSON.stringify(located.payload.slice(0, 80))}`);
      continue;
    }
    if (!commit.r || !commit.rv) {
      no('its commitment names no Hugging Face repo and revision');
      continue;
    }
    if (input.versions && (commit.v < input.versions.min || commit.v > input.versions.max)) {
      no(`global version ${commit.v} outside the allowed ${input.versions.min}..${input.versions.max}`);
      continue;
    }
    const sig = decodeSignatureCommit(input.signed.get(n.hotkey)?.payload ?? '');
    if (!sig) {
      no('no signature commitment at the end of ValidatorCommit1');
      continue;
    }
    if (!signatureVerify(commit.h, Buffer.from(sig.m, 'base64url'), n.hotkey).isValid) {
      no(`its signature does not verify for hash ${commit.h}`);
      continue;
    }
    candidates.push({ hotkey: n.hotkey, stake: n.stake, commit });
  }
  // Stake-weighted majority; ties go to the hash seen first in uid order (Python's max keeps the first).
  const stakeByHash = new Map<string, number>();
  for (const c of candidates) stakeByHash.set(c.commit.h, (stakeByHash.get(c.commit.h) ?? 0) + c.stake);
  let best: string | undefined;
  for (const [hash, stake] of stakeByHash) if (best === undefined || stake > stakeByHash.get(best)!) best = hash;
  if (best === undefined) return { excluded };
  const backing = candidates.filter((c) => c.commit.h === best).sort((a, b) => b.stake - a.stake);
  for (const c of candidates)
    if (c.commit.h !== best) excluded.push({ hotkey: c.hotkey, reason: `minority hash ${c.commit.h}` });
  const first = backing[0].commit;
  return {
    model: {
      hash: best,
      globalVer: first.v,
      repo: first.r!,
      revision: first.rv!,
      expertGroup: first.e,
      validators: backing.map((c) => ({ hotkey: c.hotkey, stake: c.stake })),
      stake: stakeByHash.get(best)!,
    },
    excluded,
  };
}
