import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { makeCurate } from '../activities/curate';
import { CycleInputSchema } from '../subnets/connito/config';
import type { DatasetRef, SegmentResult } from '../common/types';
import type { CheckpointRef } from '../subnets/connito/types';
import { openStore } from '../infra/runtime';
import { exportBrown } from '../curation/brown';
import { initBackend } from '../model/backend';
import { BASE_VOCAB, preSplit, trainBpe, type Merge } from '../model/bpe';
import { loadTokenizerIn, MANIFEST_FILE, readManifest, saveTrainingState, TOKENIZER_FILE } from '../model/checkpoint';
import { disposeWeights, initWeights, type GptConfig } from '../model/gpt';
import { Rng } from '../model/rng';
import {
  ByteTokenizer,
  evaluationBitsPerByte,
  loadTokenizer,
  parseTokenizer,
  saveTokenizer,
  serializeTokenizer,
  trainTokenizer,
  type TokenIds,
  type Tokenizer,
} from '../model/tokenizer';
import { Trainer } from '../model/trainer';
import { tempDir, testSettings } from './helpers/settings';
import { gpuActivities } from './helpers/activities';

const utf8 = new TextEncoder();
let brown: string[] = []; // the whole Brown corpus, one text per sample file (~6 MB)
let bpe: Tokenizer; // vocabulary 1024, trained on most of it

before(async () => {
  const dir = await exportBrown(tempDir());
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.txt')).sort();
  brown = await Promise.all(files.map((f) => fs.readFile(path.join(dir, f), 'utf8')));
  bpe = trainTokenizer({ tokenizer: 'bpe', vocabSize: 1024 }, trainPart());
});

const isHeldOut = (_: string, i: number) => i % 10 === 0;
const trainPart = () => brown.filter((d, i) => !isHeldOut(d, i));
const heldOutPart = () => brown.filter(isHeldOut);

function assertInVocab(ids: TokenIds, t: Tokenizer): void {
  for (let i = 0; i < ids.length; i++)
    if (!(ids[i] < t.vocabSize)) assert.fail(`id ${ids[i]} at ${i} is not below vocabSize ${t.vocabSize}`);
}

/** A random string of code points from every plane, lone surrogates excluded (UTF-8 cannot carry them). */
function randomText(rng: Rng, length: number): string {
  const ranges = [
    [0x20, 0x7e],
    [0x00, 0x1f],
    [0xa0, 0x24f],
    [0x300, 0x36f],
    [0x4e00, 0x9fff],
    [0xe000, 0xfffd],
    [0x1f300, 0x1faff],
    [0x10000, 0x10ffff],
  ];
  let s = '';
  for (let i = 0; i < length; i++) {
    const [lo, hi] = ranges[rng.int(ranges.length)];
    s += String.fromCodePoint(lo + rng.int(hi - lo + 1));
  }
  return s;
}

test('BPE round-trips any UTF-8 text exactly: emoji, CJK, combining marks, random code points, empty', () => {
  const samples = [
    '',
    ' ',
    'Hello, world!',
    'naïve café — “quotes” and ’apostrophes’',
    'e\u0301 a\u0308\u0304 decomposed marks stay with their letters',
    '👩‍👩‍👧‍👦 🇫🇷 👍🏽 family, flag and skin tone',
    '😀'.repeat(100), // one chunk longer than the cut length: surrogate pairs must not be split
    '漢字かな交じり文'.repeat(30), // a long CJK run with no spaces
    '1234567890 3.14159 1,000,000',
    '\t\n\r\n  \u00a0\u2028 whitespace \n\n\n',
    "it's we're they'll I'd",
    '\u0000\u0001\u007f control characters',
  ];
  const rng = new Rng(7);
  for (let i = 0; i < 200; i++) samples.push(randomText(rng, 1 + rng.int(80)));
  for (const s of samples) {
    assert.equal([...preSplit(s)].join(''), s, 'chunks concatenate back to the text');
    const ids = bpe.encode(s);
    assertInVocab(ids, bpe);
    assert.equal(bpe.decode(ids), s, `round trip of ${JSON.stringify(s.slice(0, 40))}`);
    assert.deepEqual(bpe.decodeBytes(ids), utf8.encode(s));
  }
});

test('BPE round-trips arbitrary bytes, and valid UTF-8 bytes encode as their text does', () => {
  const rng = new Rng(11);
  for (let i = 0; i < 200; i++) {
    const bytes = Uint8Array.from({ length: rng.int(300) }, () => rng.int(256));
    const ids = bpe.encodeBytes(bytes);
    assertInVocab(ids, bpe);
    assert.deepEqual(bpe.decodeBytes(ids), bytes);
  }
  const text = heldOutPart()[0].slice(0, 2000);
  assert.deepEqual(bpe.encodeBytes(utf8.encode(text)), bpe.encode(text));
  assert.deepEqual(
    new ByteTokenizer().decodeBytes(new ByteTokenizer().encodeBytes(Uint8Array.of(0, 255, 128))),
    Uint8Array.of(0, 255, 128),
  );
});

test('merges learned on Brown compress held-out Brown text (tokens per byte < 0.6 at vocab 1024), in seconds', () => {
  const held = heldOutPart();
  const ids = bpe.encodeDocuments(held);
  const bytes = held.reduce((n, d) => n + utf8.encode(d + '\n\n').length, 0);
  assert.equal(bpe.vocabSize, 1024);
  assertInVocab(ids, bpe);
  assert.equal(bpe.byteLength(ids), bytes);
  const ratio = ids.length / bytes;
  assert.ok(ratio < 0.6, `tokens/byte ${ratio.toFixed(3)}`);
  assert.equal(bpe.decode(ids), held.map((d) => d + '\n\n').join(''));

  const { stats } = trainBpe(brown, 2048);
  assert.equal(stats.merges, 2048 - BASE_VOCAB);
  assert.ok(stats.seconds < 30, `training on ${brown.length} documents took ${stats.seconds.toFixed(1)} s`);
});

/** The textbook algorithm: recount every pair after every merge. */
function naiveMerges(texts: string[], vocabSize: number): Merge[] {
  const chunkCounts = new Map<string, number>();
  for (const t of texts) for (const c of preSplit(t)) chunkCounts.set(c, (chunkCounts.get(c) ?? 0) + 1);
  let words = [...chunkCounts].map(([c, f]) => ({ ids: Array.from(utf8.encode(c)), f }));
  const merges: Merge[] = [];
  while (BASE_VOCAB + merges.length < vocabSize) {
    const counts = new Map<string, number>();
    for (const w of words)
      for (let i = 0; i + 1 < w.ids.length; i++)
        counts.set(`${w.ids[i]},${w.ids[i + 1]}`, (counts.get(`${w.ids[i]},${w.ids[i + 1]}`) ?? 0) + w.f);
    let best: [number, number, number] | undefined; // count, a, b
    for (const [k, n] of counts) {
      const [a, b] = k.split(',').map(Number);
      if (!best || n > best[0] || (n === best[0] && (a < best[1] || (a === best[1] && b < best[2])))) best = [n, a, b];
    }
    if (!best || best[0] < 2) break;
    const [, a, b] = best;
    const z = BASE_VOCAB + merges.length;
    merges.push([a, b]);
    words = words.map((w) => {
      const ids: number[] = [];
      for (let i = 0; i < w.ids.length; i++) {
        if (i + 1 < w.ids.length && w.ids[i] === a && w.ids[i + 1] === b) {
          ids.push(z);
          i += 1;
        } else ids.push(w.ids[i]);
      }
      return { ids, f: w.f };
    });
  }
  return merges;
}

test('incremental pair counting learns exactly the merges of the textbook algorithm', () => {
  const texts = [...brown.slice(0, 8), 'aaaaaaa aaaa abab ababab 1111111 ……', '漢字漢字漢字 😀😀😀 😀😀'];
  const { tokenizer } = trainBpe(texts, 500);
  const reference = naiveMerges(texts, 500);
  assert.equal(tokenizer.merges.length, reference.length);
  assert.deepEqual(tokenizer.merges, reference);
});

test('training is deterministic: same texts (in any order) give the same file', () => {
  const texts = brown.slice(0, 60);
  const a = serializeTokenizer(trainTokenizer({ tokenizer: 'bpe', vocabSize: 700 }, texts));
  const b = serializeTokenizer(trainTokenizer({ tokenizer: 'bpe', vocabSize: 700 }, [...texts].reverse()));
  assert.equal(a, b);
  assert.ok(a.length < 20_000, `tokenizer.json is small (${a.length} bytes)`);
});

test('a tiny corpus yields a smaller vocabulary instead of merging pairs seen once', () => {
  const t = trainTokenizer({ tokenizer: 'bpe', vocabSize: 4096 }, ['abc abc xyz']);
  assert.ok(t.vocabSize > BASE_VOCAB && t.vocabSize < 270, `vocabSize ${t.vocabSize}`);
  assert.equal(t.decode(t.encode('abc xyz q')), 'abc xyz q');
  assert.throws(
    () => trainBpe(['x'], 100),
    /vocabSize = 100: a byte-level BPE vocabulary needs an integer from 256 to 65536/,
  );
});

test('tokenizer.json: save and load give the same tokenizer; bytes too', async () => {
  const dir = tempDir();
  await saveTokenizer(path.join(dir, 'bpe.json'), bpe);
  const loaded = await loadTokenizer(path.join(dir, 'bpe.json'));
  assert.equal(loaded.type, 'bpe');
  assert.equal(loaded.vocabSize, 1024);
  assert.equal(serializeTokenizer(loaded), serializeTokenizer(bpe));
  const text = heldOutPart()[1];
  assert.deepEqual(loaded.encode(text), bpe.encode(text));

  await saveTokenizer(path.join(dir, 'bytes.json'), new ByteTokenizer());
  const bytes = await loadTokenizer(path.join(dir, 'bytes.json'));
  assert.equal(bytes.type, 'bytes');
  assert.deepEqual(bytes.encode('hé'), Uint8Array.of(0x68, 0xc3, 0xa9));
});

test('a malformed tokenizer.json is refused with a message that says what is wrong', () => {
  const good = JSON.parse(serializeTokenizer(bpe)) as { merges: number[][] };
  const text = serializeTokenizer(bpe);
  const variant = (change: (f: Record<string, unknown>) => void) => {
    const f = JSON.parse(text) as Record<string, unknown>;
    change(f);
    return JSON.stringify(f);
  };
  assert.throws(
    () => parseTokenizer(text.slice(0, text.length / 2), 'ckpt/tokenizer.json'),
    /ckpt\/tokenizer\.json: not valid JSON .*truncated or corrupt/,
  );
  assert.throws(() => parseTokenizer('[]', 'f'), /f: expected a JSON object/);
  assert.throws(
    () =>
      parseTokenizer(
        variant((f) => (f.format = 'hf-tokenizers')),
        'f',
      ),
    /format is "hf-tokenizers", expected "minerflow-tokenizer"/,
  );
  assert.throws(
    () =>
      parseTokenizer(
        variant((f) => (f.version = 2)),
        'f',
      ),
    /version 2 is not supported/,
  );
  assert.throws(
    () =>
      parseTokenizer(
        variant((f) => (f.type = 'wordpiece')),
        'f',
      ),
    /type "wordpiece": expected "bytes" or "bpe"/,
  );
  assert.throws(
    () =>
      parseTokenizer(
        variant((f) => (f.pretokenizer = 'llama')),
        'f',
      ),
    /pretokenizer "llama" is unknown/,
  );
  assert.throws(
    () =>
      parseTokenizer(
        variant((f) => (f.merges = good.merges.slice(0, 10))),
        'f',
      ),
    /has 10 merges but vocabSize 1024 needs 768 \(the file is truncated or edited\)/,
  );
  assert.throws(
    () =>
      parseTokenizer(
        variant((f) => (f.vocabSize = 70_000)),
        'f',
      ),
    /vocabSize 70000: expected an integer from 256 to 65536/,
  );
  assert.throws(
    () =>
      parseTokenizer(
        variant((f) => ((f.merges as number[][])[3] = [5000, 1])),
        'f',
      ),
    /f: merge 3 \(token 259\) is \[5000,1\]: expected two token ids below 259/,
  );
  assert.throws(
    () =>
      parseTokenizer(
        variant((f) => ((f.merges as number[][])[5] = good.merges[4])),
        'f',
      ),
    /merge 5 \(token 261\) repeats merge 4/,
  );
  assert.throws(
    () =>
      parseTokenizer(
        variant((f) => ((f.merges as unknown[])[0] = 'ab')),
        'f',
      ),
    /merge 0 \(token 256\) is "ab"/,
  );
  assert.throws(
    () =>
      parseTokenizer(JSON.stringify({ format: 'minerflow-tokenizer', version: 1, type: 'bytes', vocabSize: 300 }), 'f'),
    /vocabSize 300: a bytes tokenizer has 256/,
  );
  assert.throws(
    () => bpe.decode([65, 9999]),
    /token id 9999 at position 1 is outside this tokenizer's vocabulary of 1024/,
  );
  assert.throws(
    () => new ByteTokenizer().decode([65, 256]),
    /token id 256 at position 1 is outside the byte vocabulary of 256/,
  );
});

test('a training state saved and reloaded carries the same tokenizer; an older state without one is bytes', async () => {
  await initBackend('wasm', () => undefined);
  const tok = trainTokenizer({ tokenizer: 'bpe', vocabSize: 400 }, brown.slice(0, 20));
  const cfg: GptConfig = { vocabSize: tok.vocabSize, seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 };
  const data = tok.encodeDocuments(brown.slice(0, 3));
  const weights = initWeights(cfg, 1);
  const trainer = new Trainer(
    cfg,
    weights,
    {
      steps: 2,
      batchSize: 2,
      learningRate: 1e-3,
      warmupSteps: 0,
      weightDecay: 0,
      gradClip: 1,
      beta1: 0.9,
      beta2: 0.95,
      seed: 1,
    },
    data,
  );
  await trainer.run();
  const dir = tempDir();
  try {
    await saveTrainingState(
      dir,
      weights,
      trainer.optimizer,
      { counters: trainer.counters(), trainLoss: 1, backend: 'wasm' },
      undefined,
      tok,
    );
  } finally {
    trainer.dispose();
    disposeWeights(weights);
  }
  const back = await loadTokenizerIn(dir);
  assert.equal(serializeTokenizer(back), serializeTokenizer(tok));
  assert.deepEqual(back.encodeDocuments(brown.slice(0, 3)), data);

  const older = tempDir();
  assert.equal((await loadTokenizerIn(older)).type, 'bytes');
  await fs.writeFile(path.join(older, TOKENIZER_FILE), '{"format":"minerflow-tokenizer","version":1,"type":"bpe"');
  await assert.rejects(loadTokenizerIn(older), /tokenizer\.json: not valid JSON/);
});

test('bits per byte: the byte tokenizer gives loss / ln 2; BPE divides by the bytes its tokens stand for', () => {
  const bytes = new ByteTokenizer();
  const stream = bytes.encode('x'.repeat(100));
  assert.ok(
    Math.abs(evaluationBitsPerByte(bytes, stream, 2, 64) - 2 / Math.LN2) < 1e-12,
    'Math.abs(evaluationBitsPerByte(bytes, stream, 2, 64) - 2 / Math.LN2) < 1e-12',
  );
  const ids = bpe.encode(heldOutPart()[2]);
  const scored = 64;
  const covered = bpe.byteLength(ids.subarray(1, 1 + scored));
  assert.ok(covered > scored, 'BPE tokens stand for more than a byte each');
  assert.ok(
    Math.abs(evaluationBitsPerByte(bpe, ids, 3, scored) - (3 * scored) / (covered * Math.LN2)) < 1e-12,
    'Math.abs(evaluationBitsPerByte(bpe, ids, 3, scored) - (3 * scored) / (covered * Math.LN2)) < 1e-12',
  );
});

test('the cycle stages carry the tokenizer: trained once per dataset, saved with every state, published with the checkpoint, kept by a warm start', async () => {
  const settings = testSettings();
  const store = openStore(settings.store);
  const env = new MockActivityEnvironment();
  const input = CycleInputSchema.parse({
    corpus: { path: 'sample:brown:r' },
    curate: { heldOutFraction: 0.3 },
    model: { seqLen: 16, dModel: 16, nLayer: 1, nHead: 2, tokenizer: 'bpe', vocabSize: 512 },
    training: { steps: 4, segmentSteps: 2, batchSize: 2, warmupSteps: 1 },
    eval: { maxTokens: 512 },
  });
  const dataset: DatasetRef = await env.run(makeCurate(settings, store), {
    corpus: input.corpus,
    curate: input.curate,
  });
  const segment = (
    runId: string,
    n: number,
    from: SegmentResult['state'] | null,
    model = input.model,
    training = input.training,
  ): Promise<SegmentResult> =>
    env.run(gpuActivities(settings, store).trainSegment, {
      runId,
      segment: n,
      dataset,
      model,
      training,
      eval: input.eval,
      plannedSteps: 4,
      from,
      untilStep: 2 * n,
      lrScale: 1,
    });
  const first = await segment('bpe', 1, null);
  const second = await segment('bpe', 2, first.state);
  assert.equal(second.endStep, 4);
  const datasetCopy = `datasets/${dataset.id}/tokenizer-bpe-512.v1.json`;
  assert.ok(await store.exists(datasetCopy), 'the dataset keeps its trained tokenizer beside its splits');
  const trained = await fs.readFile(await store.get(datasetCopy), 'utf8');
  for (const key of ['runs/bpe/step-0', first.state.key, second.state.key]) {
    assert.equal(
      await fs.readFile(await store.get(`${key}/${TOKENIZER_FILE}`), 'utf8'),
      trained,
      `${key} carries the tokenizer`,
    );
  }

  const ref: CheckpointRef = await env.run(gpuActivities(settings, store).checkpoint, {
    runId: 'bpe',
    dataset,
    state: second.state,
    trainLoss: second.trainLoss,
    backend: second.backend,
    round: 0,
    model: input.model,
    eval: input.eval,
  });
  assert.equal(ref.tokenizer, 'bpe');
  assert.equal(ref.vocabSize, 512);
  assert.equal(
    await fs.readFile(await store.get(`${ref.key}/${TOKENIZER_FILE}`), 'utf8'),
    trained,
    'published beside the weights',
  );
  const manifest = await readManifest(await store.get(`${ref.key}/${MANIFEST_FILE}`));
  assert.equal(manifest.tokenizer, 'bpe');
  assert.equal(manifest.model.vocabSize, 512);
  // BPE tokens stand for several bytes each, so a token's loss spreads over more than one byte.
  assert.ok(
    ref.heldOutBitsPerByte > 0 && ref.heldOutBitsPerByte < ref.heldOutLoss / Math.LN2,
    `bits/byte ${ref.heldOutBitsPerByte}, loss ${ref.heldOutLoss}`,
  );

  // A warm start asking for bytes still trains with the BPE its weights were trained with.
  const warm = await segment(
    'warm',
    1,
    null,
    { ...input.model, tokenizer: 'bytes' },
    { ...input.training, initFrom: second.state.key },
  );
  assert.equal(await fs.readFile(await store.get(`${warm.state.key}/${TOKENIZER_FILE}`), 'utf8'), trained);
});
