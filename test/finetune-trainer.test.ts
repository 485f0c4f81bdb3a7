// Fine-tuning through the built-in trainer's own entry points (segments, LR range test, export) on a
// filesystem store: a base model imported from a folder, Brown-recipe examples as the dataset.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { EvalSchema, ModelSchema, TrainingSchema } from '../common/config';
import type { DatasetRef, SegmentResult, StateRef } from '../common/types';
import { BaseModelError, importBaseModel, saveBaseModel } from '../finetune/base-model';
import { instructExamples, preferenceExamples, splitDocs } from '../finetune/recipes';
import { createLogger } from '../infra/log';
import { FsStore } from '../infra/store/fs-store';
import { initBackend } from '../model/backend';
import { readSafetensors } from '../model/safetensors';
import { disposeWeights, initWeights, weightShapes, type GptConfig } from '../model/gpt';
import { ByteTokenizer } from '../model/tokenizer';
import { exportModel } from '../trainers/tfjs/export';
import { findLearningRate } from '../trainers/tfjs/lr-find';
import { trainSegment } from '../trainers/tfjs/segment';
import type { TrainerHooks } from '../trainers/trainer';
import { brownDocs } from '../bench/corpora';
import { tempDir } from './helpers/settings';

const root = tempDir('minerflow-finetune-');
const store = new FsStore(path.join(root, 'store'));
const log = createLogger({ level: 'warn' });
const work = path.join(root, 'work');
const cfg: GptConfig = { vocabSize: 256, seqLen: 64, dModel: 16, nLayer: 2, nHead: 2 };
const model = ModelSchema.parse({ seqLen: 64, dModel: 16, nLayer: 2, nHead: 2, tokenizer: 'bytes' });
const evalOpts = EvalSchema.parse({ batchSize: 16 });
const trainer = { kind: 'tfjs' as const };
const progress: { stage: string; [k: string]: unknown }[] = [];
const hooks: TrainerHooks = {
  progress: (p) => void progress.push(p as { stage: string }),
  signal: new AbortController().signal,
  attempt: 1,
};

async function dataset(name: string, kind: 'sft' | 'preference', lines: unknown[][]): Promise<DatasetRef> {
  const keys = await Promise.all(
    ['train', 'heldout'].map(async (split, i) => {
      const file = path.join(root, `${name}-${split}.jsonl`);
      await fs.writeFile(file, lines[i].map((l) => JSON.stringify(l)).join('\n') + '\n');
      await store.put(`datasets/${name}/${split}.jsonl`, file);
      return `datasets/${name}/${split}.jsonl`;
    }),
  );
  return {
    id: name,
    kind,
    trainKey: keys[0],
    heldOutKey: keys[1],
    reportKey: '',
    documentsIn: 0,
    trainDocuments: lines[0].length,
    heldOutDocuments: lines[1].length,
    dropped: {},
    reused: false,
  };
}

let sft: DatasetRef;
let prefs: DatasetRef;

before(async () => {
  await initBackend('auto', () => undefined);
  const base = initWeights(cfg, 4);
  await saveBaseModel(path.join(root, 'base'), base, cfg, new ByteTokenizer());
  disposeWeights(base);
  const docs = splitDocs((await brownDocs(path.join(root, 'brown'), 'a')).map((d) => d.text).slice(0, 12));
  const few = { perDoc: 4, maxChars: 80 };
  sft = await dataset('sft', 'sft', [instructExamples(docs.train, few), instructExamples(docs.heldOut, few)]);
  prefs = await dataset('prefs', 'preference', [
    preferenceExamples(docs.train, few),
    preferenceExamples(docs.heldOut, few),
  ]);
});

test('importBaseModel checks the folder: a missing file and a wrong shape are named', async () => {
  assert.deepEqual(await importBaseModel(store, path.join(root, 'base'), 'bases/tiny'), { ...cfg, moe: null });
  const broken = path.join(root, 'broken');
  await fs.cp(path.join(root, 'base'), broken, { recursive: true });
  await fs.rm(path.join(broken, 'tokenizer.json'));
  await assert.rejects(importBaseModel(store, broken, 'bases/broken'), /has no tokenizer\.json/);
  await fs.cp(path.join(root, 'base', 'tokenizer.json'), path.join(broken, 'tokenizer.json'));
  const manifest = JSON.parse(await fs.readFile(path.join(broken, 'manifest.json'), 'utf8'));
  manifest.model.dModel = 32;
  await fs.writeFile(path.join(broken, 'manifest.json'), JSON.stringify(manifest));
  await assert.rejects(importBaseModel(store, broken, 'bases/broken'), (err: Error) => {
    assert.ok(err instanceof BaseModelError, 'err instanceof BaseModelError');
    assert.match(err.message, /tensor 'wte' has shape \[256,16\] but the manifest's model needs \[256,32\]/);
    return true;
  });
  assert.equal(await store.exists('bases/broken/model.safetensors'), false);
});

const training = (finetune: unknown, extra: Record<string, unknown> = {}) =>
  TrainingSchema.parse({
    initFrom: 'bases/tiny',
    finetune,
    steps: 6,
    batchSize: 4,
    warmupSteps: 1,
    learningRate: 1e-2,
    emaDecay: 0.9,
    threads: 1,
    ...extra,
  });

const segment = (
  runId: string,
  t: ReturnType<typeof training>,
  ds: DatasetRef,
  n: number,
  from: StateRef | null,
  untilStep: number,
) =>
  trainSegment(
    work,
    store,
    log,
    {
      runId,
      segment: n,
      dataset: ds,
      trainer,
      model,
      training: t,
      eval: evalOpts,
      plannedSteps: 6,
      from,
      untilStep,
      lrScale: 1,
    },
    hooks,
  );

test('LoRA SFT in two segments equals one, bit for bit; the export is plain merged weights that beat the base', async () => {
  const t = training({
    objective: 'sft',
    method: { kind: 'lora', attention: { rank: 4 }, mlp: { rank: { first: 2, last: 8 } } },
  });
  const straight = await segment('lora-straight', t, sft, 1, null, 6);
  const first = await segment('lora-split', t, sft, 1, null, 3);
  const second = await segment('lora-split', t, sft, 2, first.state, 6);
  assert.equal(second.endStep, 6);
  assert.equal(second.state.modelHash, straight.state.modelHash, 'merged weights bit-identical');
  const lora = async (r: SegmentResult) =>
    (await fs.readFile(await store.get(`${r.state.key}/lora.safetensors`))).toString('base64');
  assert.equal(await lora(second), await lora(straight), 'adapters and their EMA bit-identical');
  assert.ok(
    Number.isFinite(straight.heldOutLoss) && straight.emaHeldOutLoss !== undefined,
    'Number.isFinite(straight.heldOutLoss) && straight.emaHeldOutLoss !== undefined',
  );

  const exported = await exportModel(
    work,
    store,
    log,
    { dataset: sft, trainer, model, eval: evalOpts, state: straight.state, training: t },
    hooks,
  );
  const { tensors } = await readSafetensors(exported.weightsFile);
  assert.deepEqual(
    [...tensors.keys()].sort(),
    [...weightShapes(cfg).keys()].sort(),
    'the built-in layout, no adapter tensors',
  );
  assert.ok(
    exported.heldOutLoss < exported.baselineLoss,
    `held-out ${exported.heldOutLoss} vs base ${exported.baselineLoss}`,
  );
});

test('DPO on the last layer: the LR range test runs on the base; steps and held-out report preference accuracy', async () => {
  const t = training(
    { objective: 'dpo', method: { kind: 'lastLayers', layers: 1 } },
    { lrFind: { enabled: true, steps: 20 } },
  );
  const lr = await findLearningRate(
    work,
    store,
    log,
    { runId: 'dpo', dataset: prefs, trainer, model, training: t },
    hooks,
  );
  assert.ok(Number.isFinite(lr.chosenLr) && lr.steps >= 10, JSON.stringify(lr));
  progress.length = 0;
  const r = await segment('dpo', t, prefs, 1, null, 4);
  const steps = progress.filter((p) => p.stage === 'training');
  assert.equal(steps.length, 4);
  for (const p of steps)
    assert.ok(
      typeof (p.metrics as Record<string, number>).preferenceAccuracy === 'number',
      "typeof (p.metrics as Record<string, number>).preferenceAccuracy === 'number'",
    );
  assert.ok(
    r.heldOutMetrics && r.heldOutMetrics.preferenceAccuracy >= 0 && r.heldOutMetrics.preferenceAccuracy <= 1,
    'r.heldOutMetrics && r.heldOutMetrics.preferenceAccuracy >= 0 && r.heldOutMetrics.preferenceAccuracy <= 1',
  );
  // The base's block 0 stays as it was; only block 1 and ln_f train.
  const base = (await readSafetensors(await store.get('bases/tiny/model.safetensors'))).tensors;
  const trained = (await readSafetensors(await store.get(`${r.state.key}/model.safetensors`))).tensors;
  assert.deepEqual(trained.get('h.0.attn.c_attn.weight')!.data, base.get('h.0.attn.c_attn.weight')!.data);
  assert.notDeepEqual(trained.get('h.1.attn.c_attn.weight')!.data, base.get('h.1.attn.c_attn.weight')!.data);
  await assert.rejects(
    segment('dpo-wrong-data', t, sft, 1, null, 2),
    /objective 'dpo' needs a dataset of preference examples, but dataset\.kind is "sft"/,
  );
});
