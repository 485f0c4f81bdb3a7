// The CLI as a person runs it (a child process), for what needs no server: usage errors name the
// flag and the value and exit with 2; config files are named when they are wrong. And lr-find runs
// the range test with what the cycle's lrFind activity gets.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { makeCurate } from '../activities/curate';
import { ModelSchema, parseOrExplain, TrainingSchema } from '../common/config';
import type { DatasetRef, LrFindReport } from '../common/types';
import { lrFindInputs, lrFindOverrides, rangeTest } from '../cli/data';
import { openStore } from '../infra/runtime';
import { importBaseModel, saveBaseModel } from '../finetune/base-model';
import { initBackend } from '../model/backend';
import { disposeWeights, initWeights } from '../model/gpt';
import { ByteTokenizer } from '../model/tokenizer';
import { CycleInputSchema } from '../subnets/connito/config';
import { torchMinerTrainer } from '../trainers/command';
import { gpuActivities } from './helpers/activities';
import { tempDir, testSettings } from './helpers/settings';

const root = path.join(__dirname, '..');

/** The command as users run it: the package's bin (npx minerflow …). */
function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'minerflow.js'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, MINERFLOW_DATA_DIR: tempDir(), TEMPORAL_ADDRESS: '127.0.0.1:1' }, // nothing listens: a usage error must come first
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function usageError(args: string[], ...mentions: (string | RegExp)[]): void {
  const r = cli(...args);
  assert.equal(r.code, 2, `${args.join(' ')}: exit code ${r.code}, stderr ${r.stderr}`);
  for (const m of mentions)
    assert.match(
      r.stderr,
      typeof m === 'string' ? new RegExp(m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : m,
      `${args.join(' ')}: ${r.stderr}`,
    );
}

test('--help prints the usage on stdout and exits 0', () => {
  const r = cli('--help');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /minerflow cycle start/);
  assert.match(r.stdout, /minerflow lr-find/);
});

test('bad numbers name the flag and the value', () => {
  usageError(['cycle', 'extend', 'wf-1', '--steps', 'abc'], "--steps 'abc'", 'integer');
  usageError(['cycle', 'extend', 'wf-1', '--steps', '-3'], "--steps '-3'");
  usageError(['cycle', 'extend', 'wf-1', '--seconds', 'soon'], "--seconds 'soon'");
  usageError(['devnet', '--port', '70000'], "--port '70000'", '65535');
  usageError(['miner', 'start', '--cycles', '1.5'], "--cycles '1.5'");
  usageError(['lr-find', '--steps', '5'], "--steps '5'");
  usageError(['lr-find', '--min-lr', 'x'], "--min-lr 'x'");
  usageError(['lr-find', '--min-lr', '0.5', '--max-lr', '0.1'], '--min-lr < --max-lr');
});

test('unknown flags, unknown commands and missing arguments are usage errors', () => {
  usageError(['cycle', 'start', '--bogus', '3'], '--bogus', "'3'");
  usageError(['cycle', 'start', '--confg=a.json'], '--confg', "'a.json'");
  usageError(['cycle', 'start', '--wait=yes'], '--wait takes no value');
  usageError(['cycle', 'start', '--id'], '--id needs a value');
  usageError(['frobnicate'], "unknown command 'frobnicate'");
  usageError(['cycle', 'restart'], "unknown 'cycle' command 'restart'");
  usageError(['schedule'], "'schedule' needs a command");
  usageError(['cycle', 'status'], 'cycle status needs a workflow id');
  usageError(['cycle', 'pause'], 'cycle pause needs a workflow id');
  usageError(['cycle', 'extend', 'wf-1'], 'one of --steps N or --seconds S');
  usageError(['cycle', 'extend', 'wf-1', '--steps', '10', '--seconds', '5'], 'one of --steps N or --seconds S');
  usageError(['miner', 'status'], 'miner status needs a workflow id');
  usageError(['schedule', 'delete'], 'schedule delete needs a schedule id');
  usageError(['schedule', 'create'], 'needs --cron');
  usageError(['worker', 'cpu'], "'worker' takes 'control' or 'gpu', not 'cpu'");
  usageError(['cycle', 'status', 'a', 'b'], "unexpected argument 'b'");
});

test('a missing, malformed or null config file is named, with the JSON error position', () => {
  const dir = tempDir();
  const bad = path.join(dir, 'bad.json');
  writeFileSync(bad, '{\n  "miner": { "netuid": 1, }\n}\n');
  usageError(['cycle', 'start', '--config', bad], bad, 'not valid JSON', /line 2/);
  const nul = path.join(dir, 'null.json');
  writeFileSync(nul, 'null');
  usageError(['cycle', 'start', '--config', nul], nul, 'the config must be a JSON object');
  usageError(['miner', 'start', '--config', path.join(dir, 'missing.json')], 'missing.json', 'not found');
  const invalid = path.join(dir, 'invalid.json');
  writeFileSync(invalid, JSON.stringify({ miner: { netuid: -1 } }));
  usageError(['lr-find', '--config', invalid], invalid, 'miner.netuid = -1');
});

test('a failure that is not a usage error exits with 1', () => {
  const r = cli('cycle', 'status', 'wf-1'); // nothing listens on TEMPORAL_ADDRESS
  assert.equal(r.code, 1, r.stderr);
});

test('lr-find hands the trainer the model and training the lrFind activity parses, flags replacing only lrFind steps and LR bounds', () => {
  const cycle = CycleInputSchema.parse({
    model: { seqLen: 16, dModel: 16 },
    training: { batchSize: 4, threads: 2, gradAccumSteps: 3, lrFind: { enabled: true, steps: 50 } },
  });
  // What the workflow sends the activity (input.model, input.training) and what findLearningRate parses it to.
  const activityModel = parseOrExplain(ModelSchema, cycle.model, 'lrFind input model');
  const activityTraining = parseOrExplain(TrainingSchema, cycle.training, 'lrFind input training');
  assert.deepEqual(lrFindInputs(cycle), { model: activityModel, training: activityTraining });
  const o = lrFindOverrides({ steps: '30', 'min-lr': '1e-6', 'max-lr': '0.5' });
  const { training } = lrFindInputs(cycle, o);
  assert.deepEqual(training, {
    ...activityTraining,
    lrFind: { ...activityTraining.lrFind, steps: 30, minLr: 1e-6, maxLr: 0.5 },
  });
  assert.equal(training.threads, 2);
  assert.equal(training.gradAccumSteps, 3);
});

test('lr-find and the lrFind activity find the same LR on the same config', async () => {
  const cycle = CycleInputSchema.parse({
    corpus: { path: 'sample:brown:r' },
    curate: { heldOutFraction: 0.2 },
    model: { seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 },
    training: { batchSize: 4, threads: 1, lrFind: { enabled: true, steps: 30, floor: 1e-4, ceiling: 1e-2 } },
  });
  const settings = testSettings();
  const store = openStore(settings.store);
  const env = new MockActivityEnvironment();
  const dataset: DatasetRef = await env.run(makeCurate(settings, store), {
    corpus: cycle.corpus,
    curate: cycle.curate,
  });
  const activity: LrFindReport = await env.run(gpuActivities(settings, store).lrFind, {
    runId: 'lr',
    dataset,
    model: cycle.model,
    training: cycle.training,
  });
  const ours = await rangeTest(settings, cycle);
  assert.equal(ours.dataset.id, dataset.id);
  // The same report, the same curve: only the time taken and the run the curve is kept under differ.
  const same = (r: LrFindReport) => ({ ...r, seconds: 0, curveKey: '' });
  assert.deepEqual(same(ours.report), same(activity));
  assert.equal(ours.report.steps, 30);
  assert.ok(await store.exists(ours.report.curveKey), ours.report.curveKey);
});

test("lr-find honours training.finetune: the range test is the base model's, which needs the examples a text corpus lacks, as in a cycle", async () => {
  // The fresh-model range test would run on this text corpus and suggest an LR for a model the cycle never trains.
  const settings = testSettings();
  await initBackend('auto', () => undefined);
  const cfg = { vocabSize: 256, seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 };
  const base = initWeights(cfg, 1);
  const dir = path.join(settings.dataDir, 'base');
  await saveBaseModel(dir, base, cfg, new ByteTokenizer());
  disposeWeights(base);
  await importBaseModel(openStore(settings.store), dir, 'bases/tiny');
  const cycle = CycleInputSchema.parse({
    corpus: { path: 'sample:brown:r' },
    curate: { heldOutFraction: 0.2 },
    model: { seqLen: 16, dModel: 16, nLayer: 1, nHead: 2, tokenizer: 'bytes' },
    training: { initFrom: 'bases/tiny', finetune: { objective: 'sft' }, lrFind: { enabled: true, steps: 20 } },
  });
  await assert.rejects(
    rangeTest(settings, cycle),
    /training\.finetune\.objective 'sft' needs a dataset of sft examples, but dataset\.kind is "text"/,
  );
});

test('lr-find runs the trainer the config names: a command trainer with no way to ramp the LR is refused as in a cycle', async () => {
  // The built-in range test would run here and suggest an LR the command trainer never tried.
  const cycle = CycleInputSchema.parse({
    corpus: { path: 'sample:brown:r' },
    curate: { heldOutFraction: 0.2 },
    trainer: { ...torchMinerTrainer({ python: 'python3' }), lrFindSet: null },
    training: { lrFind: { enabled: true, steps: 30 } },
  });
  await assert.rejects(rangeTest(testSettings(), cycle), (err: Error) => {
    assert.equal(err.name, 'InvalidInputError');
    assert.match(err.message, /training\.lrFind\.enabled is true but trainer\.lrFindSet is null/);
    return true;
  });
});
