// From the end of training to commit 1 included in a block, on the devnet (real subtensor metadata,
// signatures checked, inclusion reported over author_submitAndWatchExtrinsic):
//   ours       write the checkpoint hashing as it goes (model/safetensors.ts), sign the hash,
//              commit through the worker's open chain connection (SubtensorChain).
//   reference  the usual script's order: write the file (no fsync), then hash it from disk, then
//              connect to the chain (metadata download and decode), sign and commit, disconnect.
// Same checkpoint bytes, same devnet, same block time; runs alternate and the median counts.
// Lower time is better: ratio = reference / ours.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { encodeSignatureCommit } from '../subnets/connito/commitments';
import { parsePhases } from '../subnets/connito/phases';
import { SubtensorChain } from '../infra/chain/subtensor';
import { SUBTENSOR_SIGNED_EXTENSIONS } from '../infra/devnet/metadata';
import { startDevnet } from '../infra/devnet/server';
import { hashSafetensorsFile } from '../model/hash';
import { writeSafetensors, type StoredTensor } from '../model/safetensors';
import { benchLine, note } from './report';

const CHECKPOINT_MB = 128;
const RUNS = 3;
const BLOCK_MS = 250;
const NETUID = 102;

export async function commitLatencyBench(work: string): Promise<void> {
  await cryptoWaitReady();
  const dir = path.join(work, `commit-latency-${Date.now()}`);
  await fs.mkdir(dir, { recursive: true });
  const miner = new Keyring({ type: 'sr25519', ss58Format: 42 }).addFromUri('//bench-commit-latency');
  // A long Train phase: no commit window logic here, only the chain's own inclusion.
  const devnet = await startDevnet({
    blockMs: BLOCK_MS,
    phases: parsePhases('Train:20000,MinerCommit1:10,MinerCommit2:10,Validate:10'),
    register: [{ netuid: NETUID, address: miner.address }],
  });
  const chain = await SubtensorChain.connect({ url: devnet.url, phases: [], blockMs: BLOCK_MS }); // the worker's connection, open before training ends
  try {
    const tensors = syntheticCheckpoint(CHECKPOINT_MB);
    const ours: { total: number; write: number }[] = [];
    const reference: { total: number; write: number; hash: number; connect: number }[] = [];
    for (let run = 0; run < RUNS; run++) {
      ours.push(await oursOnce(path.join(dir, `ours-${run}.safetensors`), tensors, miner, chain));
      reference.push(await referenceOnce(path.join(dir, `ref-${run}.safetensors`), tensors, miner, devnet.url));
    }
    const oursMs = median(ours.map((r) => r.total));
    const refMs = median(reference.map((r) => r.total));
    note(
      `${CHECKPOINT_MB} MB checkpoint, ${BLOCK_MS} ms blocks, median of ${RUNS}; ours ${ours.map((r) => Math.round(r.total)).join('/')} ms, reference ${reference.map((r) => Math.round(r.total)).join('/')} ms`,
    );
    note(
      `writing the checkpoint: ours (hashing as it writes, refusing NaN, fsync before rename) ${Math.round(median(ours.map((r) => r.write)))} ms, reference ${Math.round(median(reference.map((r) => r.write)))} ms`,
    );
    note(
      `reference's extra steps: hash after writing ${Math.round(median(reference.map((r) => r.hash)))} ms, new chain connection ${Math.round(median(reference.map((r) => r.connect)))} ms`,
    );
    benchLine('commit-latency', oursMs / 1000, 's', refMs / 1000, 's', refMs / oursMs);
  } finally {
    await chain.close();
    await devnet.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function oursOnce(
  file: string,
  tensors: Map<string, StoredTensor>,
  miner: KeyringPair,
  chain: SubtensorChain,
): Promise<{ total: number; write: number }> {
  const t0 = performance.now();
  const hash = await writeSafetensors(file, tensors); // hashed while written
  const t1 = performance.now();
  await chain.commit(miner, NETUID, encodeSignatureCommit(Buffer.from(miner.sign(hash)).toString('base64url')));
  return { total: performance.now() - t0, write: t1 - t0 };
}

async function referenceOnce(
  file: string,
  tensors: Map<string, StoredTensor>,
  miner: KeyringPair,
  url: string,
): Promise<{ total: number; write: number; hash: number; connect: number }> {
  const t0 = performance.now();
  await fs.writeFile(file, safetensorsBytes(tensors));
  const t1 = performance.now();
  const hash = await hashSafetensorsFile(file);
  const t2 = performance.now();
  const api = await ApiPromise.create({
    provider: new WsProvider(url),
    signedExtensions: SUBTENSOR_SIGNED_EXTENSIONS,
    noInitWarn: true,
  });
  const t3 = performance.now();
  try {
    const payload = Buffer.from(encodeSignatureCommit(Buffer.from(miner.sign(hash)).toString('base64url')), 'utf8');
    const tx = api.tx.commitments.setCommitment(NETUID, { fields: [{ [`Raw${payload.length}`]: payload }] });
    await new Promise<void>((resolve, reject) => {
      tx.signAndSend(miner, { nonce: -1 }, ({ status, dispatchError }) => {
        if (!status.isInBlock) return;
        if (dispatchError) reject(new Error(`reference commit failed: ${dispatchError.toString()}`));
        else resolve();
      }).catch(reject);
    });
  } finally {
    await api.disconnect();
  }
  return { total: performance.now() - t0, write: t1 - t0, hash: t2 - t1, connect: t3 - t2 };
}

/** A checkpoint of `mb` megabytes of F32 weights in a few dozen tensors, deterministic values. */
function syntheticCheckpoint(mb: number): Map<string, StoredTensor> {
  const tensors = new Map<string, StoredTensor>();
  const perTensor = 1 << 20; // 4 MB each
  for (let i = 0; i < (mb * (1 << 20)) / 4 / perTensor; i++) {
    const data = new Float32Array(perTensor);
    for (let j = 0; j < perTensor; j++) data[j] = Math.sin(i * 7919 + j) * 0.02;
    tensors.set(`h.${String(i).padStart(3, '0')}.weight`, { shape: [1024, 1024], data });
  }
  return tensors;
}

/** The same bytes writeSafetensors produces (sorted names, 8-byte aligned header), without hashing. */
function safetensorsBytes(tensors: Map<string, StoredTensor>): Buffer {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: {} };
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, 'utf8'), ...names.map((n) => Buffer.from(tensors.get(n)!.data.buffer))]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
