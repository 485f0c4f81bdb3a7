// Fine-tuning in the built-in trainer: the SFT mask, the DPO loss against a hand computation and
// PyTorch, LoRA merged against unmerged, exact resume mid-LoRA, a short SFT run, bad config.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrExplain, TrainingSchema } from '../common/config';
import { FinetuneSchema, type FinetuneInput } from '../finetune/config';
import type { SftExample } from '../finetune/examples';
import { mergedWeights, prepareFinetune, adaptersOf } from '../finetune/methods';
import { dpoLoss, maskedCrossEntropy, sequenceLogProbs } from '../finetune/objectives';
import { encodeExamples, FinetuneRun } from '../finetune/run';
import { encodeSft, fitSequence, sequenceTensors } from '../finetune/sequences';
import { loadFinetuneState, saveFinetuneState } from '../finetune/state';
import { initBackend } from '../model/backend';
import { STATE_FILE, type TrainingStateMeta } from '../model/checkpoint';
import { disposeWeights, forward, initWeights, type GptConfig, type Weights } from '../model/gpt';
import { ByteTokenizer } from '../model/tokenizer';
import { Trainer, type TrainConfig } from '../model/trainer';
import { pythonScript } from './helpers/python';
import { tempDir } from './helpers/settings';

const cfg: GptConfig = { vocabSize: 256, seqLen: 32, dModel: 16, nLayer: 2, nHead: 2 };
const tokenizer = new ByteTokenizer();
const ft = (x: unknown): FinetuneInput => FinetuneSchema.parse(x);

before(async () => {
  await initBackend('auto', () => undefined);
});

/** "<word> is" → " <its length in letters>": a response the prompt decides. */
function examples(n: number, offset = 0): SftExample[] {
  const words = ['apple', 'cat', 'river', 'mountain', 'sky', 'tree', 'ocean', 'bird', 'stone', 'light'];
  return Array.from({ length: n }, (_, i) => {
    const w = words[(i + offset) % words.length] + String.fromCharCode(97 + ((i * 7 + offset) % 26));
    return {
      parts: [
        { text: `spell ${w}:`, train: false },
        { text: ` ${w.split('').join(' ')}.`, train: true },
      ],
    };
  });
}

const schedule: TrainConfig = {
  steps: 40,
  batchSize: 4,
  learningRate: 1e-2,
  warmupSteps: 2,
  weightDecay: 0.1,
  gradClip: 1,
  beta1: 0.9,
  beta2: 0.95,
  seed: 3,
  emaDecay: 0.99,
};

test('SFT masking: prompt positions get exactly zero gradient, and their targets do not change the loss', () => {
  const seqs = examples(3).map((e) => encodeSft(e, tokenizer, cfg.seqLen)!);
  const { ids, targets, mask } = sequenceTensors(seqs, cfg.seqLen);
  const w = initWeights(cfg, 1);
  const logits = forward(w, cfg, ids);
  const g = tf.grad((l: tf.Tensor) => maskedCrossEntropy(l as tf.Tensor2D, targets, mask))(logits);
  const gRows = g.arraySync() as number[][];
  const m = mask.dataSync();
  let masked = 0;
  let trainedNonZero = 0;
  for (let i = 0; i < m.length; i++) {
    if (m[i] === 0) {
      masked += 1;
      assert.ok(
        gRows[i].every((x) => x === 0),
        `row ${i} (a prompt or padding position) has a non-zero gradient`,
      );
    } else if (gRows[i].some((x) => x !== 0)) trainedNonZero += 1;
  }
  assert.ok(masked > 10 && trainedNonZero > 10, `${masked} masked rows, ${trainedNonZero} trained rows with gradient`);
  // A different target at a prompt position: the same loss, bit for bit; at a response position: not.
  const loss = (t: tf.Tensor1D) => maskedCrossEntropy(logits, t, mask).dataSync()[0];
  const t = Array.from(targets.dataSync());
  const prompt = m.findIndex((x) => x === 0);
  const response = m.findIndex((x) => x === 1);
  const changed = (at: number) =>
    tf.tensor1d(
      t.map((x, i) => (i === at ? (x + 1) % 256 : x)),
      'int32',
    );
  assert.equal(loss(changed(prompt)), loss(targets));
  assert.notEqual(loss(changed(response)), loss(targets));
  tf.dispose([ids, targets, mask, logits, g]);
  disposeWeights(w);
});

test('truncation keeps the response: the prompt loses its left, the response its tail', () => {
  const toks = Array.from({ length: 30 }, (_, i) => i);
  const train = toks.map((i) => i >= 20);
  const s = fitSequence(toks, train, 9)!; // 10 tokens
  assert.deepEqual(s.ids, [19, 20, 21, 22, 23, 24, 25, 26, 27, 28]); // starts at the input that predicts token 20
  assert.equal(
    fitSequence(
      toks,
      toks.map(() => false),
      9,
    ),
    null,
  );
  const short = fitSequence(
    toks.slice(0, 12),
    toks.slice(0, 12).map((i) => i >= 5),
    20,
  )!;
  assert.deepEqual(short.ids, toks.slice(0, 12)); // fits: nothing dropped
  const longResponse = fitSequence(
    toks,
    toks.map((i) => i >= 2),
    9,
  )!;
  assert.deepEqual(longResponse.ids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]); // the response's tail goes
});

test('DPO loss equals a hand computation and PyTorch on the same logits', () => {
  const B = 3;
  const T = 5;
  const V = 11;
  const policy = tf.randomNormal([2 * B * T, V], 0, 2, 'float32', 7) as tf.Tensor2D;
  const reference = tf.randomNormal([2 * B * T, V], 0, 2, 'float32', 8) as tf.Tensor2D;
  const targets = Array.from({ length: 2 * B * T }, (_, i) => (i * 5 + 3) % V);
  const mask = Array.from({ length: 2 * B * T }, (_, i) => (i % T >= 2 ? 1 : 0)); // first 2 positions: prompt
  const beta = 0.1;
  const tT = tf.tensor1d(targets, 'int32');
  const tM = tf.tensor1d(mask, 'float32');
  const pol = sequenceLogProbs(policy, tT, tM, 2 * B);
  const ref = sequenceLogProbs(reference, tT, tM, 2 * B);
  const ours = dpoLoss(tf.slice(pol, 0, B), tf.slice(pol, B, B), tf.slice(ref, 0, B), tf.slice(ref, B, B), beta);
  const oursLoss = ours.loss.dataSync()[0];

  // By hand: log-softmax with a log-sum-exp, in float64.
  const seqLogp = (logits: number[][], row: number) => {
    let s = 0;
    for (let t = 0; t < T; t++) {
      const i = row * T + t;
      if (!mask[i]) continue;
      const max = Math.max(...logits[i]);
      const lse = max + Math.log(logits[i].reduce((a, x) => a + Math.exp(x - max), 0));
      s += logits[i][targets[i]] - lse;
    }
    return s;
  };
  const P = policy.arraySync();
  const R = reference.arraySync();
  let hand = 0;
  for (let b = 0; b < B; b++) {
    const z = beta * (seqLogp(P, b) - seqLogp(R, b) - (seqLogp(P, B + b) - seqLogp(R, B + b)));
    hand += Math.log1p(Math.exp(-z)) / B;
  }
  assert.ok(Math.abs(oursLoss - hand) < 1e-5, `ours ${oursLoss}, by hand ${hand}`);

  const rows = (x: number[][]) => Array.from({ length: 2 * B }, (_, r) => x.slice(r * T, (r + 1) * T));
  const torch = JSON.parse(
    pythonScript(
      'venv-torch',
      'dpo_torch.py',
      [],
      JSON.stringify({
        policy: rows(P),
        reference: rows(R),
        targets: rows(targets.map((x) => [x])).map((r) => r.map((x) => x[0])),
        mask: rows(mask.map((x) => [x])).map((r) => r.map((x) => x[0])),
        beta,
      }),
    ),
  ) as { loss: number; margins: number[] };
  assert.ok(Math.abs(oursLoss - torch.loss) < 1e-5, `ours ${oursLoss}, PyTorch ${torch.loss}`);
  const margins = Array.from(ours.margins.dataSync());
  margins.forEach((m, i) =>
    assert.ok(Math.abs(m - torch.margins[i]) < 1e-5, `margin ${i}: ${m} vs ${torch.margins[i]}`),
  );
  tf.dispose([policy, reference, tT, tM, pol, ref, ours.loss, ours.margins]);
});

test('LoRA: the merged model computes what the base plus adapters computes (within 1e-5)', () => {
  const moeCfg: GptConfig = { ...cfg, moe: { experts: 2, topK: 1, capacityFactor: 2, auxLossWeight: 0.01, every: 2 } };
  const base = initWeights(moeCfg, 2);
  const m = prepareFinetune(
    moeCfg,
    base,
    ft({ objective: 'sft', method: { kind: 'lora', attention: { rank: 4 }, mlp: { rank: { first: 2, last: 6 } } } })
      .method,
  );
  assert.ok(m.trainable.has('h.1.moe.experts.1.c_fc.weight.lora_B'), 'experts get adapters');
  assert.equal(m.trainable.get('h.1.mlp.c_fc.weight.lora_A'), undefined);
  assert.equal(m.trainable.get('h.1.moe.experts.0.c_fc.weight.lora_A')!.shape[1], 6); // rising ranks
  // B starts at zero; give it values so the adapters change the output.
  let i = 0;
  for (const [name, v] of m.trainable)
    if (name.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', ++i));
  const ids = tf.tensor2d([Array.from({ length: 16 }, (_, t) => (t * 37) % 256)], [1, 16], 'int32');
  const unmerged = forward(base, moeCfg, ids, adaptersOf(m.lora, m.trainable));
  const merged = mergedWeights(m);
  const viaMerged = forward(merged, moeCfg, ids);
  const plain = forward(base, moeCfg, ids);
  const diff = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
  assert.ok(diff(unmerged, viaMerged) < 1e-5, `merged vs unmerged: ${diff(unmerged, viaMerged)}`);
  assert.ok(diff(unmerged, plain) > 1e-2, 'the adapters change the output');
  tf.dispose([ids, unmerged, viaMerged, plain]);
  disposeWeights(merged);
  for (const v of m.trainable.values()) v.dispose();
  disposeWeights(base);
});

/** A LoRA SFT trainer on the synthetic examples, from the base initWeights(cfg, 5). */
function loraTrainer(counters?: TrainingStateMeta['counters']) {
  const base = initWeights(cfg, 5);
  const run = new FinetuneRun(
    cfg,
    base,
    ft({ objective: 'sft', method: { kind: 'lora', attention: { rank: 4 }, mlp: { rank: [2, 8] } } }),
  );
  const { encoded } = encodeExamples('sft', examples(24), tokenizer, cfg.seqLen);
  const trainer = new Trainer(cfg, run.model.trainable, schedule, run.objective(encoded), counters);
  return { base, run, trainer };
}

test('resume mid-LoRA: 4 steps, save, load from the base plus the state, 4 more equals 8 straight, bit for bit', async () => {
  const straight = loraTrainer();
  await straight.trainer.run({ untilStep: 8 });

  const first = loraTrainer();
  await first.trainer.run({ untilStep: 4 });
  const dir = await tempDir('finetune-resume');
  await saveFinetuneState(
    dir,
    first.run.model,
    first.trainer,
    { counters: first.trainer.counters(), trainLoss: 0, backend: tf.getBackend() },
    tokenizer,
  );
  const counters = (JSON.parse(await fs.readFile(path.join(dir, STATE_FILE), 'utf8')) as TrainingStateMeta).counters;
  const second = loraTrainer(counters);
  await loadFinetuneState(async (f) => path.join(dir, f), second.run.model, second.trainer);
  await second.trainer.run({ untilStep: 8 });

  const same = (a: Weights, b: Weights, what: string) => {
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [name, t] of a) assert.deepEqual(t.dataSync(), b.get(name)!.dataSync(), `${what} ${name} differs`);
  };
  same(straight.run.model.trainable, second.run.model.trainable, 'adapter');
  same(straight.trainer.ema!.shadow, second.trainer.ema!.shadow, 'EMA');
  for (const [name, m] of straight.trainer.optimizer.m)
    assert.deepEqual(m.dataSync(), second.trainer.optimizer.m.get(name)!.dataSync(), `moment ${name}`);
  const untouched = initWeights(cfg, 5);
  same(straight.base, untouched, 'base (frozen under LoRA)');
  disposeWeights(untouched);
  assert.notDeepEqual(
    straight.run.model.trainable.get('h.0.attn.c_attn.weight.lora_B')!.dataSync(),
    new Float32Array(16 * 3 * 4),
    'B trained',
  );
  for (const t of [straight, first, second]) {
    t.trainer.dispose();
    t.run.dispose();
    disposeWeights(t.base);
  }
});

test('a short SFT run lowers the held-out masked loss', async () => {
  // Full fine-tuning: a random base's tiny tied head leaves LoRA little to move in 30 steps (the bench compares methods on a trained base).
  const base = initWeights(cfg, 9);
  const run = new FinetuneRun(cfg, base, ft({ objective: 'sft', method: { kind: 'full' } }));
  const train = encodeExamples('sft', examples(40), tokenizer, cfg.seqLen).encoded;
  const heldOut = encodeExamples('sft', examples(10, 3), tokenizer, cfg.seqLen).encoded;
  const start = run.evaluate(heldOut, 8).loss;
  const trainer = new Trainer(
    cfg,
    run.model.trainable,
    { ...schedule, emaDecay: 0, learningRate: 3e-2 },
    run.objective(train),
  );
  await trainer.run({ untilStep: 30 });
  const end = run.evaluate(heldOut, 8).loss;
  assert.ok(end < start - 0.5, `held-out masked loss ${start.toFixed(3)} → ${end.toFixed(3)}`);
  trainer.dispose();
  run.dispose();
  disposeWeights(base);
});

test('bad fine-tuning config is named by field', () => {
  const bad = (training: unknown, field: RegExp) =>
    assert.throws(() => parseOrExplain(TrainingSchema, training, 'training'), field);
  bad({ finetune: { objective: 'sft' } }, /initFrom = null.*needs a base model/);
  bad({ initFrom: 'base', finetune: { objective: 'ppo' } }, /finetune\.objective = "ppo"/);
  bad(
    { initFrom: 'base', finetune: { objective: 'sft', method: { kind: 'lora', attention: { rank: 0 } } } },
    /finetune\.method\.attention\.rank = 0/,
  );
  bad({ initFrom: 'base', finetune: { objective: 'dpo', dpo: { beta: -1 } } }, /finetune\.dpo\.beta = -1/);
  bad(
    { initFrom: 'base', finetune: { objective: 'sft', method: { kind: 'lora', attention: null, mlp: null } } },
    /finetune\.method.*adapts nothing/,
  );
  bad(
    { initFrom: 'base', finetune: { objective: 'sft', method: { kind: 'lastLayers' } } },
    /finetune\.method\.layers = missing/,
  );
  const ok = parseOrExplain(TrainingSchema, { initFrom: 'base', finetune: { objective: 'sft' } }, 'training');
  assert.deepEqual(ok.finetune?.method, {
    kind: 'lora',
    attention: { rank: 16, alpha: 32 },
    mlp: { rank: 16, alpha: 32 },
    trainEmbeddings: false,
    seed: 0,
  });
  assert.equal(ok.finetune?.dpo.beta, 0.1);
  // Checked against the base model once it is known.
  const base = initWeights(cfg, 1);
  assert.throws(
    () => prepareFinetune(cfg, base, ft({ objective: 'sft', method: { kind: 'lastLayers', layers: 3 } }).method),
    /training\.finetune\.method\.layers \(3\) is more than the base model's 2 layers/,
  );
  assert.throws(
    () =>
      prepareFinetune(cfg, base, ft({ objective: 'sft', method: { kind: 'lora', mlp: { rank: [4, 4, 4] } } }).method),
    /training\.finetune\.method\.mlp\.rank lists 3 ranks but the base model has 2 layers/,
  );
  assert.throws(
    () =>
      new FinetuneRun(cfg, base, ft({ objective: 'dpo' })).objective(
        encodeExamples('sft', examples(2), tokenizer, 32).encoded,
      ),
    /objective 'dpo' needs preference examples.*sft/,
  );
  disposeWeights(base);
});

test('fine-tuning leaks no tensors: a DPO LoRA run trained, evaluated, saved and disposed leaves none behind', async () => {
  const before = tf.memory().numTensors;
  const base = initWeights(cfg, 6);
  const run = new FinetuneRun(cfg, base, ft({ objective: 'dpo', method: { kind: 'lora', attention: { rank: 2 } } }));
  const prefs = encodeExamples(
    'preference',
    examples(8).map((e) => ({ prompt: e.parts[0].text, chosen: e.parts[1].text, rejected: ' z z z.' })),
    tokenizer,
    cfg.seqLen,
  ).encoded;
  const trainer = new Trainer(cfg, run.model.trainable, schedule, run.objective(prefs));
  const r = await trainer.run({ untilStep: 3 });
  assert.ok(
    r.history.every((h) => typeof h.metrics?.rewardMargin === 'number'),
    "r.history.every((h) => typeof h.metrics?.rewardMargin === 'number')",
  );
  run.evaluate(prefs, 4, trainer.ema!.shadow);
  await saveFinetuneState(
    await tempDir('finetune-leak'),
    run.model,
    trainer,
    { counters: trainer.counters(), trainLoss: 0, backend: tf.getBackend() },
    tokenizer,
  );
  trainer.dispose();
  run.dispose();
  disposeWeights(base);
  assert.equal(tf.memory().numTensors, before);
});

test('NaN guard under LoRA: non-finite steps are skipped, and skipLimit in a row restore the last good adapters', async () => {
  const base = initWeights(cfg, 5);
  const run = new FinetuneRun(cfg, base, ft({ objective: 'sft', method: { kind: 'lora', attention: { rank: 4 } } }));
  const { encoded } = encodeExamples('sft', examples(16), tokenizer, cfg.seqLen);
  const trainer = new Trainer(cfg, run.model.trainable, { ...schedule, skipLimit: 2 }, run.objective(encoded));
  trainer.plantNonFinite = (step) => step >= 2;
  // The last good state is where the last applied step started: after step 1 here.
  await trainer.run({ untilStep: 1 });
  const good = new Map([...run.model.trainable].map(([n, t]) => [n, t.dataSync().slice()]));
  const r = await trainer.run({ untilStep: 4 });
  assert.deepEqual(
    r.history.map((h) => [h.skipped, h.restores]),
    [
      [0, 0],
      [1, 0],
      [2, 1],
    ],
  );
  for (const [n, t] of run.model.trainable)
    assert.deepEqual(t.dataSync(), good.get(n), `${n} is not the last good value`);
  assert.equal(trainer.lrScale, 0.5);
  trainer.dispose();
  run.dispose();
  disposeWeights(base);
});
