// The command trainer driving the real PyTorch miner (miners/torch, Debian torch) with a real store:
// a segment and its checkpoint in Connito's layout, the torch export scored by the validator's own
// TensorFlow.js evaluation, a SIGKILLed trainer resumed from its latest checkpoint, a backtrack
// restarting from an earlier checkpoint with the lower LR, the deadline, and no trainer left
// running after its worker is SIGKILLed (the process table says so).
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { CurateSchema, EvalSchema, ModelSchema, TrainingSchema } from '../common/config';
import type { DatasetRef, SegmentResult } from '../common/types';
import { makeCurate } from '../activities/curate';
import { readSplit } from '../curation/curate';
import { openStore } from '../infra/runtime';
import { initBackend } from '../model/backend';
import { loadWeights } from '../model/checkpoint';
import { evaluate } from '../model/evaluate';
import { disposeWeights } from '../model/gpt';
import { ByteTokenizer } from '../model/tokenizer';
import { createCommandTrainer, torchMinerTrainer } from '../trainers/command';
import { toYaml } from '../trainers/command/attempt-config';
import { parseProtocolLine } from '../trainers/command/progress';
import type { SegmentRequest, TrainerHooks } from '../trainers/trainer';
import { createLogger } from '../infra/log';
import { testLogger } from './helpers/activities';
import { testSettings } from './helpers/settings';

const PYTHON = path.join(__dirname, '..', '.tools', 'venv-torch', 'bin', 'python');
const model = ModelSchema.parse({
  seqLen: 32,
  dModel: 32,
  nLayer: 2,
  nHead: 2,
  tokenizer: 'bytes',
  moe: { experts: 4, topK: 2 },
});
const training = TrainingSchema.parse({
  steps: 60,
  segmentSteps: 20,
  batchSize: 8,
  learningRate: 5e-3,
  warmupSteps: 5,
});
const evalInput = EvalSchema.parse({ maxTokens: 4096 });

const settings = testSettings();
const store = openStore(settings.store);
const trainer = createCommandTrainer(settings.dataDir, store, testLogger);
let dataset: DatasetRef;

before(async () => {
  dataset = await new MockActivityEnvironment().run(makeCurate(settings, store), {
    corpus: { path: 'sample:brown:a', format: 'auto' as const, textField: 'text' },
    curate: CurateSchema.parse({ heldOutFraction: 0.1 }),
  });
});

function segment(o: Partial<SegmentRequest> & { runId: string }): SegmentRequest {
  return {
    segment: 1,
    dataset,
    trainer: torchMinerTrainer({ python: PYTHON, checkpointInterval: 5 }),
    model,
    training,
    eval: evalInput,
    plannedSteps: training.steps,
    from: null,
    untilStep: 20,
    lrScale: 1,
    ...o,
  };
}

function hooks(
  attempt = 1,
  onProgress: (p: Record<string, unknown>) => void = () => {},
  signal = new AbortController().signal,
): TrainerHooks {
  return { progress: (p) => onProgress(p as Record<string, unknown>), signal, attempt };
}

/** Processes whose command line contains `needle`: the process table, not our bookkeeping. */
function processesWith(needle: string): { pid: number; pgid: number; args: string }[] {
  return execFileSync('ps', ['-eo', 'pid=,pgid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => !!m && m[3].includes(needle) && !m[3].startsWith('ps '))
    .map((m) => ({ pid: Number(m[1]), pgid: Number(m[2]), args: m[3] }));
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('command trainer with the PyTorch miner', () => {
  let first: SegmentResult;

  it("trains a segment, keeps its checkpoint in Connito's layout, and the validator's loader scores the torch export as torch does", async () => {
    first = await trainer.trainSegment(segment({ runId: 'basic' }), hooks());
    assert.equal(first.endStep, 20);
    assert.equal(first.state.step, 20);
    assert.match(first.state.key, /segment-1\/globalver_0_inneropt_20$/);
    for (const f of ['model_expgroup_0.pt', 'model_expgroup_1.pt', 'model_shared.pt', 'inner_optimizer.pt'])
      assert.ok(await store.exists(`${first.state.key}/${f}`), f);
    // torch reads the shards; each expert-group shard holds only its own experts.
    const keys = execFileSync(
      PYTHON,
      [
        '-c',
        'import sys, torch; print(" ".join(sorted(torch.load(sys.argv[1])["model_state_dict"])))',
        await store.get(`${first.state.key}/model_expgroup_1.pt`),
      ],
      { encoding: 'utf8' },
    )
      .trim()
      .split(' ');
    assert.ok(keys.length > 0 && keys.every((k) => /\.moe\.experts\.(1|3)\./.test(k)), keys.join(' '));
    assert.ok(first.heldOutLoss < Math.log(256) - 0.5, `held-out ${first.heldOutLoss}`);

    const exported = await trainer.exportModel(
      { dataset, trainer: segment({ runId: 'x' }).trainer, model, eval: evalInput, state: first.state },
      hooks(),
    );
    assert.equal(exported.heldOutLoss, first.heldOutLoss);
    assert.ok(exported.heldOutLoss < exported.baselineLoss, 'exported.heldOutLoss < exported.baselineLoss');
    // What the devnet validator does (subnets/connito/validator.ts): load by the manifest's model, byte tokens, evaluate().
    await initBackend('auto', () => {});
    const cfg = exported.model as unknown as Parameters<typeof loadWeights>[1];
    const weights = await loadWeights(exported.weightsFile, cfg);
    const tokens = new ByteTokenizer().encodeDocuments(await readSplit(await store.get(dataset.heldOutKey)));
    const tfjsLoss = evaluate(weights, cfg, tokens, evalInput).loss;
    disposeWeights(weights);
    assert.ok(Math.abs(tfjsLoss - exported.heldOutLoss) < 2e-3, `tfjs ${tfjsLoss} vs torch ${exported.heldOutLoss}`);
  });

  it('a backtrack restarts from the earlier checkpoint with the LR scaled, written into that attempt’s config', async () => {
    const lines: string[] = [];
    const result = await trainer.trainSegment(
      segment({ runId: 'basic', segment: 3, from: first.state, untilStep: 30, lrScale: 0.25 }),
      hooks(1, (p) => lines.push(JSON.stringify(p))),
    );
    assert.equal(result.startStep, 20);
    assert.equal(result.endStep, 30);
    const config = await fs.readFile(
      path.join(settings.dataDir, 'work/command/basic/segment-3/attempt-1/config.yaml'),
      'utf8',
    );
    assert.match(config, new RegExp(`"lr": ${training.learningRate * 0.25}\\b`));
    const firstProgress = JSON.parse(lines.find((l) => l.includes('"stage":"training"'))!) as {
      resumeFrom: string;
      step: number;
    };
    assert.equal(firstProgress.resumeFrom, first.state.key);
    assert.ok(
      firstProgress.step > 20 && firstProgress.step <= 30,
      'firstProgress.step > 20 && firstProgress.step <= 30',
    );
  });

  it('weights that blow up make a non-finite segment (for the policy to back off), not a failed evaluation', async () => {
    // 1e28 × the LR: the first step overflows the weights; the miner skips the NaN steps after it.
    const result = await trainer.trainSegment(segment({ runId: 'blow-up', untilStep: 5, lrScale: 1e28 }), hooks());
    assert.equal(result.endStep, 5);
    assert.ok(Number.isNaN(result.heldOutLoss), `held-out ${result.heldOutLoss}`);
    assert.equal(result.nonFinite, true);
  });

  it('SIGKILL of the trainer mid-segment fails the attempt as a crash; the next attempt resumes from its latest checkpoint', async () => {
    const req = segment({ runId: 'crash', untilStep: 100 });
    let killed: number | undefined;
    const attempt1 = trainer.trainSegment(
      req,
      hooks(1, (p) => {
        // Step 12 in progress: the checkpoints at 5 and 10 are on disk.
        if (killed === undefined && p.stage === 'training' && (p.step as number) >= 12) {
          const [proc] = processesWith(path.join('crash', 'segment-1', 'attempt-1', 'config.yaml'));
          killed = p.step as number;
          process.kill(proc.pid, 'SIGKILL');
        }
      }),
    );
    await assert.rejects(
      attempt1,
      (err: Error) => err.name === 'TrainerCrashedError' && /status 137/.test(err.message),
    );
    assert.ok(killed! >= 12, 'killed! >= 12');
    const progress: Record<string, unknown>[] = [];
    const attempt2 = await trainer.trainSegment(
      req,
      hooks(2, (p) => progress.push(p)),
    );
    const resumedAt = progress.find((p) => p.stage === 'training' && typeof p.resumeFrom === 'string')!;
    assert.match(resumedAt.resumeFrom as string, /segment-1\/globalver_0_inneropt_(\d+)$/);
    const resumedStep = Number(/inneropt_(\d+)$/.exec(resumedAt.resumeFrom as string)![1]);
    assert.ok(resumedStep >= 10 && resumedStep < killed!, `resumed at ${resumedStep}, killed at step ${killed}`);
    assert.ok((resumedAt.step as number) > resumedStep, 'its first step is after the checkpoint, not step 1');
    assert.equal(resumedAt.restores, 1);
    assert.equal(attempt2.attempt, 2);
    assert.equal(attempt2.startStep, 0);
    assert.equal(attempt2.endStep, 100);
  });

  it('the deadline stops the trainer (SIGINT: it saves and exits) before stopAt, keeping what it trained', async () => {
    const t = {
      ...torchMinerTrainer({ python: PYTHON, checkpointInterval: 1000 }),
      stop: { sigintGraceSeconds: 3, sigtermGraceSeconds: 1 },
    };
    const stopAt = Date.now() + 12_000;
    const result = await trainer.trainSegment(
      segment({ runId: 'deadline', trainer: t, untilStep: 100_000, plannedSteps: 100_000, stopAt }),
      hooks(),
    );
    const gone = Date.now();
    assert.ok(result.stoppedEarly, 'result.stoppedEarly');
    assert.ok(result.endStep > 0 && result.endStep < 100_000, 'result.endStep > 0 && result.endStep < 100_000');
    assert.deepEqual(processesWith(path.join('deadline', 'segment-1')), []);
    // The trainer was gone by stopAt (the evaluation after it takes a moment more).
    const metrics = await fs.stat(
      path.join(settings.dataDir, 'work/command/deadline/segment-1/attempt-1/metrics-segment-1.jsonl'),
    );
    assert.ok(metrics.mtimeMs <= stopAt + 500, `trainer ended ${metrics.mtimeMs - stopAt} ms after stopAt`);
    assert.ok(gone > stopAt - 4_000, 'it was stopped for the deadline, not before its grace periods');
  });

  it('SIGKILL of the worker leaves no trainer running: the supervisor ends the group (process table)', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(__dirname, 'helpers', 'command-segment-child.ts'),
        settings.dataDir,
        settings.store,
        JSON.stringify(dataset),
        PYTHON,
        JSON.stringify(training),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await until(
      'the trainer to run',
      () =>
        new Promise<true | undefined>((r) =>
          child.stdout!.once('data', (d: Buffer) => r(d.toString().includes('TRAINER_RUNNING') ? true : undefined)),
        ),
    );
    const needle = path.join('orphan', 'segment-1', 'attempt-1', 'config.yaml');
    const [running] = processesWith(needle);
    assert.ok(running, 'the trainer runs');
    assert.notEqual(
      running.pgid,
      child.pid,
      'the trainer is not in the worker’s process group: killing that group would not reach it',
    );
    child.kill('SIGKILL');
    await until('the trainer to be gone', () => (processesWith(needle).length === 0 ? true : undefined), 20_000);
    assert.deepEqual(processesWith(needle), []);
    assert.deepEqual(processesWith(`-- ${PYTHON}`), [], 'no supervisor left either');
  });
});

describe("command trainer: the LR range test and the trainer's EMA weights", () => {
  const lrFindTraining = (lrFind: object) =>
    TrainingSchema.parse({ ...training, lrFind: { enabled: true, ...lrFind } });

  it('the LR range test runs the command with a ramped LR, reads the curve from its log lines and returns a suggestion within the clamp', async () => {
    const t = lrFindTraining({ steps: 40, minLr: 1e-4, maxLr: 0.3, floor: 1e-3, ceiling: 4e-3 });
    const lrs: number[] = [];
    const report = await trainer.findLearningRate(
      { runId: 'lr-find', dataset, trainer: segment({ runId: 'x' }).trainer, model, training: t },
      hooks(1, (p) => p.stage === 'lrFind' && lrs.push(p.lr as number)),
    );
    assert.equal(report.steps, 40);
    assert.equal(report.diverged, false);
    // The LRs read are train.py's ramp: minLr · (maxLr / minLr)^(i / (steps − 1)).
    assert.equal(lrs.length, 40);
    lrs.forEach((lr, i) => assert.ok(Math.abs(lr / (1e-4 * 3000 ** (i / 39)) - 1) < 1e-6, `LR ${i}: ${lr}`));
    assert.ok(report.suggestedLr > 1e-4 && report.suggestedLr < 0.3, `suggested ${report.suggestedLr}`);
    assert.equal(report.chosenLr, Math.min(4e-3, Math.max(1e-3, report.suggestedLr)));
    // The curve went down: a trained model, not noise (its first point is the untrained model's loss).
    assert.ok(report.curve.at(-1)!.loss < report.curve[0].loss - 0.5, JSON.stringify(report.curve));
    const stored = (await fs.readFile(await store.get(report.curveKey), 'utf8')).trim().split('\n');
    assert.equal(stored.length, 40);
  });

  it('a diverging LR range test is stopped and reported as diverged', async () => {
    const t = lrFindTraining({ steps: 60, minLr: 1, maxLr: 10, floor: 1e-3, ceiling: 4e-3 });
    const report = await trainer.findLearningRate(
      { runId: 'lr-find-diverged', dataset, trainer: segment({ runId: 'x' }).trainer, model, training: t },
      hooks(),
    );
    assert.equal(report.diverged, true);
    assert.ok(report.steps < 60, `stopped after ${report.steps} points`);
    assert.ok(report.chosenLr >= 1e-3 && report.chosenLr <= 4e-3, 'report.chosenLr >= 1e-3 && report.chosenLr <= 4e-3');
  });

  it('an LR range test with too few points from the trainer is inconclusive, and says why', async () => {
    const cfg = torchMinerTrainer({ python: PYTHON });
    const t = lrFindTraining({ steps: 40 });
    await assert.rejects(
      trainer.findLearningRate(
        {
          runId: 'lr-find-short',
          dataset,
          trainer: { ...cfg, lrFindSet: { ...cfg.lrFindSet, 'train.max_steps': 5 } },
          model,
          training: t,
        },
        hooks(),
      ),
      (err: Error) => err.name === 'LrFindInconclusiveError' && /got 5 points.*it stopped/.test(err.message),
    );
  });

  it("EMA weights the trainer writes in the checkpoint's ema/ folder are evaluated beside the raw ones, and the better is published", async () => {
    const t = TrainingSchema.parse({ ...training, emaDecay: 0.8 });
    const result = await trainer.trainSegment(segment({ runId: 'ema', training: t }), hooks());
    for (const f of ['ema/model_expgroup_0.pt', 'ema/model_expgroup_1.pt', 'ema/model_shared.pt'])
      assert.ok(await store.exists(`${result.state.key}/${f}`), f);
    const exported = await trainer.exportModel(
      { dataset, trainer: segment({ runId: 'x' }).trainer, model, eval: evalInput, state: result.state },
      hooks(),
    );
    const ema = exported.emaHeldOutLoss!;
    assert.ok(Number.isFinite(ema) && ema !== exported.rawHeldOutLoss, `raw ${exported.rawHeldOutLoss}, EMA ${ema}`);
    assert.equal(exported.rawHeldOutLoss, result.heldOutLoss);
    assert.equal(exported.weights, ema < exported.rawHeldOutLoss ? 'ema' : 'raw');
    assert.equal(exported.heldOutLoss, Math.min(ema, exported.rawHeldOutLoss));
    // The published file is the chosen weights: the validator's evaluator gives it the chosen loss.
    await initBackend('auto', () => {});
    const cfg = exported.model as unknown as Parameters<typeof loadWeights>[1];
    const weights = await loadWeights(exported.weightsFile, cfg);
    const tokens = new ByteTokenizer().encodeDocuments(await readSplit(await store.get(dataset.heldOutKey)));
    const tfjsLoss = evaluate(weights, cfg, tokens, evalInput).loss;
    disposeWeights(weights);
    assert.ok(Math.abs(tfjsLoss - exported.heldOutLoss) < 2e-3, `tfjs ${tfjsLoss} vs ${exported.heldOutLoss}`);
  });
});

describe('command trainer kept alive across segments (trainer.keepAlive)', () => {
  // The planned steps are far away: the process would otherwise finish the run during an evaluation.
  const far = 100_000;
  const kept = (idleSeconds = 3, checkpointInterval = 5) =>
    torchMinerTrainer({ python: PYTHON, checkpointInterval, keepAlive: { idleSeconds } });
  /** The run's train.py processes (not their supervisors), from the process table. */
  const trainers = (runId: string) =>
    processesWith(path.join(runId, 'live-segment-')).filter(
      (p) => p.args.includes('train.py') && !p.args.startsWith('/bin/sh'),
    );

  it('one process trains segment after segment, and what it trains is what restarting at each boundary trains', async () => {
    const t = kept();
    const pids: number[] = [];
    let from: SegmentResult['state'] | null = null;
    const results: SegmentResult[] = [];
    for (const [segmentNo, untilStep] of [
      [1, 20],
      [2, 40],
      [3, 60],
    ]) {
      const r = await trainer.trainSegment(
        segment({ runId: 'kept', segment: segmentNo, trainer: t, from, untilStep, plannedSteps: far }),
        hooks(),
      );
      results.push(r);
      from = r.state;
      const running = trainers('kept');
      assert.equal(running.length, 1, JSON.stringify(running));
      pids.push(running[0].pid);
    }
    assert.deepEqual(
      results.map((r) => [r.startStep, r.endStep]),
      [
        [0, 20],
        [20, 40],
        [40, 60],
      ],
    );
    assert.deepEqual(
      [pids[1], pids[2]],
      [pids[0], pids[0]],
      'segments 2 and 3 went on with the process segment 1 started',
    );
    assert.match(results[1].state.key, /segment-2\/globalver_0_inneropt_40$/);
    for (const r of results) assert.ok(Number.isFinite(r.heldOutLoss), `segment ${r.segment}: ${r.heldOutLoss}`);
    // One process per segment, restarted from each checkpoint, reaches the same weights: going on is
    // not a different training run, only a cheaper one.
    let oneShot: SegmentResult['state'] | null = null;
    for (const [segmentNo, untilStep] of [
      [1, 20],
      [2, 40],
    ])
      oneShot = (
        await trainer.trainSegment(
          segment({ runId: 'one-shot', segment: segmentNo, from: oneShot, untilStep, plannedSteps: far }),
          hooks(),
        )
      ).state;
    const weights = async (key: string) =>
      execFileSync(
        PYTHON,
        [
          '-c',
          'import sys, torch; s = torch.load(sys.argv[1])["model_state_dict"]; print(sum(float(v.double().abs().sum()) for v in s.values()))',
          await store.get(`${key}/model_shared.pt`),
        ],
        { encoding: 'utf8' },
      ).trim();
    assert.equal(await weights(results[1].state.key), await weights(oneShot!.key));
    await until('the idle process to be stopped', () => (trainers('kept').length === 0 ? true : undefined));
  });

  it('a backtrack (another LR, an earlier state) stops the running process and starts one from that state', async () => {
    const t = kept();
    const first = await trainer.trainSegment(
      segment({ runId: 'kept-back', trainer: t, plannedSteps: far, untilStep: 20 }),
      hooks(),
    );
    const second = await trainer.trainSegment(
      segment({ runId: 'kept-back', segment: 2, trainer: t, plannedSteps: far, from: first.state, untilStep: 40 }),
      hooks(),
    );
    const [before] = trainers('kept-back');
    const back = await trainer.trainSegment(
      segment({
        runId: 'kept-back',
        segment: 3,
        trainer: t,
        plannedSteps: far,
        from: first.state,
        untilStep: 40,
        lrScale: 0.5,
      }),
      hooks(),
    );
    const after = trainers('kept-back');
    assert.equal(after.length, 1, JSON.stringify(after));
    assert.notEqual(after[0].pid, before.pid);
    assert.equal(back.startStep, 20);
    assert.equal(back.endStep, 40);
    assert.notEqual(back.state.modelHash, second.state.modelHash, 'trained again at half the LR');
    const config = await fs.readFile(
      path.join(settings.dataDir, 'work/command/kept-back/live-segment-3/attempt-1/config.yaml'),
      'utf8',
    );
    assert.match(config, new RegExp(`"lr": ${training.learningRate * 0.5}\\b`));
    assert.match(config, /"max_steps": 100000\b/, 'it runs to the planned steps, not the segment end');
    await trainer.trainSegment(
      segment({
        runId: 'kept-back',
        segment: 4,
        trainer: t,
        plannedSteps: far,
        from: back.state,
        untilStep: 60,
        lrScale: 0.5,
      }),
      hooks(),
    );
  });

  it('a process no segment adopts is stopped after idleSeconds (a pause, the end of training)', async () => {
    const r = await trainer.trainSegment(
      segment({ runId: 'kept-idle', trainer: kept(1), untilStep: 10, plannedSteps: 100_000 }),
      hooks(),
    );
    assert.equal(r.endStep, 10);
    await until('the idle trainer to be stopped', () => (trainers('kept-idle').length === 0 ? true : undefined));
    // The next segment starts a process from the state the last one returned.
    const next = await trainer.trainSegment(
      segment({
        runId: 'kept-idle',
        segment: 2,
        trainer: kept(1),
        from: r.state,
        untilStep: 20,
        plannedSteps: 100_000,
      }),
      hooks(),
    );
    assert.deepEqual([next.startStep, next.endStep], [10, 20]);
  });

  it('SIGKILL of the kept-alive trainer fails the segment as a crash; the retry resumes from the checkpoint the process published for it', async () => {
    const t = { ...kept(), stop: { sigintGraceSeconds: 2, sigtermGraceSeconds: 1 } };
    const first = await trainer.trainSegment(
      segment({ runId: 'kept-crash', trainer: t, untilStep: 20, plannedSteps: far }),
      hooks(),
    );
    // The segment's end is out of reach: however far the process ran during segment 1's
    // evaluation, it is still training when segment 2 follows it and the kill comes.
    const req = segment({
      runId: 'kept-crash',
      segment: 2,
      trainer: t,
      from: first.state,
      untilStep: far,
      plannedSteps: far,
    });
    let seen: number | undefined;
    let killedAt: number | undefined;
    await assert.rejects(
      trainer.trainSegment(
        req,
        hooks(1, (p) => {
          if (p.stage !== 'training' || typeof p.step !== 'number') return;
          seen ??= p.step;
          if (killedAt === undefined && p.step >= seen + 12) {
            killedAt = p.step;
            for (const proc of trainers('kept-crash')) process.kill(proc.pid, 'SIGKILL');
          }
        }),
      ),
      (err: Error) => err.name === 'TrainerCrashedError',
    );
    const progress: Record<string, unknown>[] = [];
    // The retry is the same segment; a deadline ends it (its end step is out of reach).
    const retry = await trainer.trainSegment(
      { ...req, stopAt: Date.now() + 10_000 },
      hooks(2, (p) => progress.push(p)),
    );
    const resumedFrom = progress.find((p) => p.stage === 'training')!.resumeFrom as string;
    assert.match(resumedFrom, /segment-2\/globalver_0_inneropt_(\d+)$/);
    const resumedStep = Number(/inneropt_(\d+)$/.exec(resumedFrom)![1]);
    // Checkpoints every 5 steps, each written after its step's progress line: with step seen + 12
    // reported, one past seen + 5 was on disk when the kill came.
    assert.ok(resumedStep > seen! + 5, `resumed at ${resumedStep}; followed from step ${seen}, killed at ${killedAt}`);
    assert.equal(retry.startStep, 20);
    assert.ok(retry.stoppedEarly && retry.endStep > resumedStep, JSON.stringify(retry));
  });

  it('the deadline a segment brings stops the running process, and cancelling a segment kills it', async () => {
    const t = { ...kept(), stop: { sigintGraceSeconds: 3, sigtermGraceSeconds: 1 } };
    const first = await trainer.trainSegment(
      segment({ runId: 'kept-deadline', trainer: t, untilStep: 10, plannedSteps: 100_000 }),
      hooks(),
    );
    const stopAt = Date.now() + 8_000;
    const r = await trainer.trainSegment(
      segment({
        runId: 'kept-deadline',
        segment: 2,
        trainer: t,
        from: first.state,
        untilStep: 100_000,
        plannedSteps: 100_000,
        stopAt,
      }),
      hooks(),
    );
    assert.ok(r.stoppedEarly, 'r.stoppedEarly');
    assert.ok(r.endStep > 10 && r.endStep < 100_000, 'r.endStep > 10 && r.endStep < 100_000');
    assert.deepEqual(trainers('kept-deadline'), []);

    const cancel = new AbortController();
    const cancelled = trainer.trainSegment(
      segment({ runId: 'kept-cancel', trainer: t, untilStep: 100_000, plannedSteps: 100_000 }),
      hooks(
        1,
        (p) => p.stage === 'training' && (p.step as number) > 3 && cancel.abort(new Error('cancelled by the test')),
        cancel.signal,
      ),
    );
    await assert.rejects(cancelled, /cancelled by the test/);
    await until(
      'the cancelled trainer to be gone',
      () => (trainers('kept-cancel').length === 0 ? true : undefined),
      20_000,
    );
  });
});

describe('the PyTorch miner speaking the JSON-lines protocol (progress: jsonl)', () => {
  // A logger that keeps what the supervisor says: an invalid protocol line is logged and ignored.
  const logged: { level: number; msg: string; problem?: string }[] = [];
  const jsonlLog = createLogger({
    level: 'info',
    destination: { write: (line: string) => void logged.push(JSON.parse(line) as (typeof logged)[number]) },
  });
  const jsonlTrainer = createCommandTrainer(settings.dataDir, store, jsonlLog);
  const jsonl = () => torchMinerTrainer({ python: PYTHON, checkpointInterval: 5, progress: 'jsonl' });
  const invalidLines = () => logged.filter((l) => /invalid protocol line/.test(l.msg)).map((l) => l.problem);
  const MINER_DIR = path.join(__dirname, '..', 'miners', 'torch');

  it("heartbeats carry the miner's own step, loss, LR, grad norm and tokens/s, and its announced checkpoints are published", async () => {
    const seen: Record<string, unknown>[] = [];
    const published: unknown[] = [];
    const result = await jsonlTrainer.trainSegment(
      { ...segment({ runId: 'jsonl' }), trainer: jsonl() },
      hooks(1, (p) => {
        if (p.stage !== 'training') return;
        if ('checkpoint' in p) published.push(p.step);
        else seen.push(p);
      }),
    );
    assert.equal(result.endStep, 20);
    assert.deepEqual(invalidLines(), []);
    assert.deepEqual(published, [5, 10, 15, 20]);
    assert.match(result.state.key, /segment-1\/globalver_0_inneropt_20$/);
    // One report a step, numbered 1..20 as the miner counts completed steps.
    assert.deepEqual(
      seen.map((p) => p.step),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    for (const p of seen) {
      for (const k of ['loss', 'lr', 'gradNorm', 'tokensPerSec'] as const)
        assert.ok(Number.isFinite(p[k]) && (p[k] as number) > 0, `step ${String(p.step)}: ${k} = ${String(p[k])}`);
    }
    // The warmup (5 steps at 5e-3) as the miner's scheduler reported it: step 1 at lr/5.
    assert.ok(Math.abs((seen[0].lr as number) / 1e-3 - 1) < 1e-9, `step 1 LR ${String(seen[0].lr)}`);
    assert.ok(result.heldOutLoss < Math.log(256) - 0.5, `held-out ${result.heldOutLoss}`);
  });

  it('a diverging miner writes strict JSON (null for NaN), and the supervisor reads those steps as non-finite', async () => {
    // The miner alone, at an LR that overflows the weights by its second step.
    const dir = path.join(settings.dataDir, 'jsonl-nan');
    await fs.mkdir(path.join(dir, 'checkpoints'), { recursive: true });
    const config = path.join(dir, 'config.yaml');
    await fs.writeFile(
      config,
      toYaml({
        model: { d_model: 32, n_layer: 2, n_head: 2 },
        moe: { num_experts: 4, num_experts_per_tok: 2 },
        opt: { lr: 1e30 },
        sched: { warmup_steps: 1, total_steps: 6 },
        task: { exp: { data: { batch_size: 4, sequence_length: 32, train_file: await store.get(dataset.trainKey) } } },
        ckpt: { checkpoint_path: path.join(dir, 'checkpoints'), checkpoint_interval: 100 },
        log: { format: 'jsonl' },
      }) + '\n',
    );
    const out = execFileSync(PYTHON, [path.join(MINER_DIR, 'train.py'), '--path', config], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    const protocol = out.split('\n').filter((l) => l.includes('"minerflow"'));
    const progress = protocol.map((l) => JSON.parse(l) as { type: string; loss?: number | null }); // strict: no bare NaN
    assert.equal(progress.filter((m) => m.type === 'progress').length, 6);
    assert.ok(
      progress.some((m) => m.loss === null),
      `no non-finite step at LR 1e30: ${protocol.join('\n')}`,
    );
    for (const line of protocol) assert.notEqual(parseProtocolLine(line).type, 'invalid', line);
    const losses = protocol.map(parseProtocolLine).flatMap((m) => (m.type === 'progress' ? [m.update.loss!] : []));
    assert.ok(Number.isNaN(losses.at(-1)), `last loss ${losses.at(-1)}`);
  });
});
