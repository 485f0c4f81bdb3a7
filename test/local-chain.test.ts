import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { checkpointKey, encodeCommit } from '../common/commitments';
import { parsePhases, phaseWindow } from '../common/phases';
import { LocalChain } from '../infra/chain/local-chain';
import { createLocalValidator } from '../infra/chain/local-validator';
import { FsStore } from '../infra/store/fs-store';
import { createHotkey, loadHotkey } from '../infra/wallet';
import { initBackend } from '../model/backend';
import { MANIFEST_FILE, saveWeights, TOKENIZER_FILE, WEIGHTS_FILE, writeManifest } from '../model/checkpoint';
import { disposeWeights, initWeights, type GptConfig } from '../model/gpt';
import { saveTokenizer, trainTokenizer } from '../model/tokenizer';
import { Trainer } from '../model/trainer';
import { tempDir } from './helpers/settings';

const PHASES = parsePhases('Train:4,MinerCommit1:4,MinerCommit2:4,Validate:4');
const BLOCK_MS = 100;

async function untilPhase(chain: LocalChain, round: number, phase: string): Promise<void> {
  const s = await chain.schedule();
  const start = phaseWindow(s, round, phase).start;
  const wait = (start - s.block) * BLOCK_MS + 20;
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

test('the local chain rejects unregistered hotkeys and oversize payloads with the chain error', async () => {
  const wallets = tempDir();
  const a = await createHotkey(wallets, 'w', 'registered');
  await createHotkey(wallets, 'w', 'stranger');
  const chain = await LocalChain.open({ file: path.join(tempDir(), 'chain.json'), blockMs: BLOCK_MS, phases: PHASES, register: [{ netuid: 102, address: a.address }] });
  const stranger = await loadHotkey(wallets, 'w', 'stranger');
  await assert.rejects(chain.commit(stranger, 102, '{}'), /not registered on netuid 102/);
  const registered = await loadHotkey(wallets, 'w', 'registered');
  await assert.rejects(chain.commit(registered, 102, 'x'.repeat(129)), /129 bytes > 128/);
  assert.throws(() => encodeCommit({ h: 'a'.repeat(48), u: 'file:///' + 'x'.repeat(80), v: 1 }), /limit is 128/);
  const { block } = await chain.commit(registered, 102, '{"s":"abc"}');
  assert.deepEqual(await chain.commitment(registered.address, 102), { block, payload: '{"s":"abc"}' });
  assert.equal(await chain.uid(stranger.address, 102), null);
});

test('the local validator verifies signature and hash, evaluates, and scores by the Connito rule', async () => {
  await initBackend('wasm', () => undefined);
  const wallets = tempDir();
  const honest = await createHotkey(wallets, 'w', 'honest');
  const forger = await createHotkey(wallets, 'w', 'forger');
  const store = new FsStore(tempDir());
  const docs = Array.from({ length: 200 }, (_, i) => `a quick brown fox ${i % 5} jumps over the lazy dog.`);

  // A trained BPE checkpoint, published under its hash with its tokenizer as the checkpoint activity does.
  const tokenizer = trainTokenizer({ tokenizer: 'bpe', vocabSize: 300 }, docs);
  const cfg: GptConfig = { vocabSize: tokenizer.vocabSize, seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 };
  const weights = initWeights(cfg, 3);
  const trainer = new Trainer(cfg, weights, { steps: 40, batchSize: 8, learningRate: 1e-2, warmupSteps: 2, weightDecay: 0, gradClip: 1, beta1: 0.9, beta2: 0.95, seed: 1 }, tokenizer.encodeDocuments(docs));
  await trainer.run();
  const work = tempDir();
  const hash = await saveWeights(path.join(work, WEIGHTS_FILE), weights);
  trainer.dispose();
  disposeWeights(weights);
  await writeManifest(work, { format: 'minerflow-checkpoint', version: 1, modelHash: hash, model: { ...cfg, seed: 3 }, tokenizer: 'bpe', step: 40, trainLoss: 0, backend: 'wasm', runId: 't', round: 0 });
  await saveTokenizer(path.join(work, TOKENIZER_FILE), tokenizer);
  await store.put(`${checkpointKey(hash)}/${WEIGHTS_FILE}`, path.join(work, WEIGHTS_FILE), { immutable: true });
  await store.put(`${checkpointKey(hash)}/${TOKENIZER_FILE}`, path.join(work, TOKENIZER_FILE), { immutable: true });
  await store.put(`${checkpointKey(hash)}/${MANIFEST_FILE}`, path.join(work, MANIFEST_FILE), { immutable: true });

  const validator = createLocalValidator({ heldOutText: async () => docs.slice(0, 20), openStore: () => store, evalMaxTokens: 1024 });
  const chain = await LocalChain.open({
    file: path.join(tempDir(), 'chain.json'),
    blockMs: BLOCK_MS,
    phases: PHASES,
    register: [{ netuid: 7, address: honest.address }, { netuid: 7, address: forger.address }],
    validator,
  });
  const h = await loadHotkey(wallets, 'w', 'honest');
  const f = await loadHotkey(wallets, 'w', 'forger');
  await untilPhase(chain, 0, 'MinerCommit1');
  await chain.commit(h, 7, encodeCommit({ s: Buffer.from(h.sign(hash)).toString('base64url') }));
  await chain.commit(f, 7, encodeCommit({ s: Buffer.from(f.sign('0'.repeat(48))).toString('base64url') })); // signed another hash
  await untilPhase(chain, 0, 'MinerCommit2');
  await chain.commit(h, 7, encodeCommit({ h: hash, u: store.uri, v: 1 }));
  await chain.commit(f, 7, encodeCommit({ h: hash, u: store.uri, v: 1 })); // copies the honest miner's hash
  assert.equal(await chain.score(h.address, 7), null, 'no score before the Validate phase');
  await untilPhase(chain, 0, 'Validate');

  const hs = await chain.score(h.address, 7);
  const fs_ = await chain.score(f.address, 7);
  assert.ok(hs && fs_);
  assert.ok(hs.details!.loss < hs.details!.baselineLoss);
  assert.equal(hs.details!.rank, 1);
  assert.equal(hs.details!.reward, 2.25);
  assert.equal(hs.incentiveShare, 1);
  assert.ok(Number.isNaN(fs_.details!.loss));
  assert.match(fs_.details!.reason!, /signature does not verify/);
  assert.equal(fs_.incentiveShare, 0);

  // Tampering with the stored file after committing is caught by the hash check next round.
  const stored = await store.get(`${checkpointKey(hash)}/${WEIGHTS_FILE}`);
  const bytes = await fs.readFile(stored);
  bytes[bytes.length - 10] ^= 0xff; // flip bits inside the last tensor
  await fs.writeFile(stored, bytes);
  await untilPhase(chain, 1, 'MinerCommit1');
  await chain.commit(h, 7, encodeCommit({ s: Buffer.from(h.sign(hash)).toString('base64url') }));
  await untilPhase(chain, 1, 'MinerCommit2');
  await chain.commit(h, 7, encodeCommit({ h: hash, u: store.uri, v: 1 }));
  await untilPhase(chain, 1, 'Validate');
  const again = await chain.score(h.address, 7);
  assert.match(again!.details!.reason ?? '', /checkpoint hash \w+ differs from the committed/);
  assert.equal(again!.details!.reward, 0);
});
