// trainingJob and poolScheduler on Temporal's time-skipping server with stubbed activities: hours of
// deadlines pass in seconds, whatever the machine's speed. The scheduler grants slots earliest
// deadline first; a failing or terminated job gives its slot back; every job delivers before its
// deadline, a bad base model fails early without taking a slot.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { activityInfo, heartbeat } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundle } from '@temporalio/worker';
import { poolQueue, TASK_QUEUES } from '../common/queues';
import type { DatasetRef, SegmentResult } from '../common/types';
import { makeGradientsControlActivities } from '../subnets/gradients/activities';
import { jobWorkflowId, poolWorkflowId, type TrainingJobInput, type TrainingJobResult } from '../subnets/gradients/job';
import type { PublishInput, Published } from '../subnets/gradients/publish';
import type { SegmentRequest } from '../trainers/trainer';
import { jobStatusQuery, pauseSignal, poolLoadQuery, poolScheduler, trainingJob } from '../workflows';
import { advanceUntil, until, useTimeSkipping } from './helpers/time-skipping';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
useTimeSkipping((t) => ({ env, bundle } = t));

const H = 3_600_000;

/**
 * What a job's stubs do. Orderings are made by events, not durations: a stub waits (in real time,
 * heartbeating) until a condition on what the others did holds. Simulated time only passes on the
 * workflows' own timers, when nothing runs: a stub that slept on the test server's clock would let
 * it skip past the other workflows' task timeouts.
 */
interface Plan {
  prepareAfter?: (log: Log) => boolean; // hold data preparation until this holds
  trainWhile?: (log: Log) => boolean; // hold the first segment while this holds
  pauseAfterFirst?: boolean; // the job pauses after its first segment (holding its slot, nothing in flight)
  failTraining?: boolean;
  badBase?: boolean;
}

/** What the stubs saw, in simulated time. */
interface Log {
  requests: string[]; // task ids in the order they asked for a slot
  trainStarts: { taskId: string; at: number }[];
  published: { taskId: string; at: number; repo: string; trained: boolean }[];
  outcomes: { taskId: string; event: string }[];
  training: Set<string>; // jobs between their first segment and their publish
  maxTraining: number;
}

async function waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`stub: timed out waiting for ${what}`);
    heartbeat();
    await new Promise((r) => setTimeout(r, 20));
  }
}

const debug = (...a: unknown[]) => {
  if (process.env.DEBUG_JOBS) console.log(new Date().toISOString(), ...a);
};

function stubs(plans: Map<string, Plan>, log: Log) {
  const taskOf = () => (activityInfo().workflowExecution?.workflowId ?? '').replace(/^gradients-job-/, '');
  const planOf = () => plans.get(taskOf()) ?? {};
  const real = makeGradientsControlActivities({
    workDir: '/nonexistent',
    store: undefined as never,
    hub: () => {
      throw new Error('no hub in this test');
    },
    prepare: () => Promise.reject(new Error('stubbed')),
  });
  const control = {
    async prepareGradientsData(): Promise<DatasetRef> {
      const after = planOf().prepareAfter;
      if (after) await waitFor('its turn to prepare', () => after(log));
      return {
        id: taskOf(),
        kind: 'text',
        trainKey: 'x/train.jsonl',
        heldOutKey: 'x/held.jsonl',
        reportKey: 'x/report.json',
        documentsIn: 10,
        trainDocuments: 9,
        heldOutDocuments: 1,
        dropped: {},
        reused: false,
      };
    },
    async fetchBaseModel(input: { repo: string }) {
      if (planOf().badBase)
        throw ApplicationFailure.nonRetryable(
          `request.model '${input.repo}': manifest.json is not on the hub`,
          'BaseModelError',
        );
      return {
        repo: input.repo,
        commitSha: 'c'.repeat(40),
        initFrom: `base-models/${input.repo}/${'c'.repeat(40)}`,
        model: { seqLen: 32, dModel: 32, nLayer: 1, nHead: 2, tokenizer: 'bytes' as const, vocabSize: 256 },
        parameters: 20_000,
      };
    },
    async requestPoolSlot(input: Parameters<typeof real.requestPoolSlot>[0]) {
      log.requests.push(input.request.taskId);
      debug('request', input.request.taskId, await env.currentTimeMs());
      return real.requestPoolSlot(input); // the real signalWithStart
    },
    async recordJobOutcome(input: { taskId: string; event: string }) {
      log.outcomes.push({ taskId: input.taskId, event: input.event });
    },
  };
  const gpu = {
    async trainSegment(input: SegmentRequest): Promise<SegmentResult> {
      const taskId = taskOf();
      const startStep = input.from?.step ?? 0;
      if (input.segment === 1) {
        log.trainStarts.push({ taskId, at: await env.currentTimeMs() });
        log.training.add(taskId);
        log.maxTraining = Math.max(log.maxTraining, log.training.size);
      }
      const plan = planOf();
      debug('segment', taskId, input.segment, await env.currentTimeMs());
      if (plan.failTraining) {
        log.training.delete(taskId);
        throw ApplicationFailure.nonRetryable('the trainer ran out of memory', 'ModelTooLargeError');
      }
      if (plan.trainWhile && input.segment === 1) await waitFor('the others', () => plan.trainWhile!(log));
      if (plan.pauseAfterFirst) await env.client.workflow.getHandle(jobWorkflowId(taskId)).signal(pauseSignal);
      const key = `runs/${input.runId}/step-${input.untilStep}`;
      return {
        segment: input.segment,
        attempt: 1,
        startStep,
        endStep: input.untilStep,
        state: { key, step: input.untilStep, modelHash: key },
        trainLoss: 3 - input.untilStep / 100,
        heldOutLoss: 3 - input.untilStep / 100,
        skippedBatches: 0,
        nonFinite: false,
        stoppedEarly: false,
        seconds: 1,
        tokensPerSec: 1000,
        lr: 1e-3,
        backend: 'sim',
        metricsKey: `${key}/metrics.jsonl`,
      };
    },
    async publishSubmission(input: PublishInput): Promise<Published> {
      log.training.delete(taskOf());
      debug('publish', taskOf(), await env.currentTimeMs());
      log.published.push({
        taskId: input.taskId,
        at: await env.currentTimeMs(),
        repo: input.repo,
        trained: input.state !== null,
      });
      return {
        submission: { repo: input.repo, model_hash: 'f'.repeat(64) },
        commitSha: 'a'.repeat(40),
        heldOutLoss: input.state ? 2.5 : null,
        files: ['model.safetensors'],
      };
    },
  };
  return { control, gpu };
}

const CONFIG = {
  training: { steps: 30, segmentSteps: 10, heartbeatTimeoutSeconds: 120 },
  reserveSeconds: 600,
  hubNamespace: 'miner',
};

function job(taskId: string, receivedAt: number, hours: number, pool: string): TrainingJobInput {
  return {
    request: {
      model: 'minerflow-demo/brown-gpt-small',
      task_id: taskId,
      hours_to_complete: hours,
      expected_repo_name: `repo-${taskId}`,
      dataset: 'http://validator/data.json',
      dataset_type: {},
      file_format: 'json',
    },
    taskType: 'InstructTextTask',
    offer: null,
    decision: {
      accepted: true,
      reason: 'fits',
      pool,
      method: 'full',
      estimatedSeconds: 1800,
      estimatedFinish: null,
    },
    receivedAt,
    config: { ...CONFIG, pools: [{ name: pool, slots: 1, memoryBytes: 2 ** 30 }] },
  };
}

let seq = 0;
/** Runs the jobs (task id → hours to complete, plan) with a control and a pool-'a' worker until all close. */
async function runJobs(
  jobs: { name: string; hours: number; plan?: Plan }[],
  during?: (ids: Map<string, string>, pool: string) => Promise<void>,
) {
  const run = ++seq;
  const plans = new Map<string, Plan>();
  const ids = new Map<string, string>();
  for (const j of jobs) {
    ids.set(j.name, `${j.name}-${run}`);
    plans.set(`${j.name}-${run}`, j.plan ?? {});
  }
  const log: Log = { requests: [], trainStarts: [], published: [], outcomes: [], training: new Set(), maxTraining: 0 };
  const { control, gpu } = stubs(plans, log);
  const common = {
    connection: env.nativeConnection,
    maxHeartbeatThrottleInterval: 1,
    defaultHeartbeatThrottleInterval: 1,
  };
  const controlWorker = await Worker.create({
    ...common,
    taskQueue: TASK_QUEUES.control,
    workflowBundle: bundle,
    activities: control,
  });
  // A pool of its own per run: a scheduler left from an earlier run would sit on its old worker's sticky queue.
  const pool = `a${run}`;
  const gpuWorker = await Worker.create({ ...common, taskQueue: poolQueue(pool), activities: gpu });
  const t0 = await env.currentTimeMs();
  const results = await controlWorker.runUntil(
    gpuWorker.runUntil(async () => {
      const handles = await Promise.all(
        jobs.map((j) =>
          env.client.workflow.start(trainingJob, {
            taskQueue: TASK_QUEUES.control,
            workflowId: jobWorkflowId(ids.get(j.name)!),
            args: [job(ids.get(j.name)!, t0, j.hours, pool)],
          }),
        ),
      );
      if (during) await during(ids, pool);
      // Polled, not awaited with result(): awaiting a result lets the server skip its clock, and it
      // would jump to a waiting job's deadline in the moment between one activity and the next task.
      await until(
        'every job closed',
        async () =>
          (await Promise.all(handles.map((h) => h.describe()))).every((d) => d.status.name !== 'RUNNING')
            ? true
            : undefined,
        90_000,
      );
      await env.client.workflow
        .getHandle(poolWorkflowId(pool))
        .terminate('test over')
        .catch(() => undefined);
      return Promise.all(
        handles.map((h) =>
          h.result().then(
            (r): TrainingJobResult | Error => r,
            (e: Error) => e,
          ),
        ),
      );
    }),
  );
  const byName = new Map(jobs.map((j, i) => [j.name, results[i]]));
  const name = (taskId: string) => [...ids].find(([, id]) => id === taskId)?.[0] ?? taskId;
  return {
    t0,
    log: {
      requests: log.requests.map(name),
      trainStarts: log.trainStarts.map((s) => ({ ...s, taskId: name(s.taskId) })),
      published: log.published.map((p) => ({ ...p, taskId: name(p.taskId) })),
      outcomes: log.outcomes.map((o) => ({ ...o, taskId: name(o.taskId) })),
      maxTraining: log.maxTraining,
    },
    result: (n: string) => byName.get(n)!,
  };
}

test(
  'one slot, three jobs: the one due sooner trains before the one that asked earlier; all deliver before their deadlines',
  { timeout: 120_000 },
  async () => {
    // `first` takes the slot at once; `x` (due in 10 h) asks before `y` (due in 5 h) while it trains.
    const { t0, log, result } = await runJobs([
      { name: 'first', hours: 20, plan: { trainWhile: (l) => l.requests.length < 3 } },
      { name: 'x', hours: 10, plan: { prepareAfter: (l) => l.training.size > 0 } },
      { name: 'y', hours: 5, plan: { prepareAfter: (l) => l.requests.length === 2 } },
    ]);
    assert.deepEqual(log.requests, ['first', 'x', 'y']);
    assert.deepEqual(
      log.trainStarts.map((s) => s.taskId),
      ['first', 'y', 'x'],
      'earliest deadline first, not first come',
    );
    for (const [n, hours] of [
      ['first', 20],
      ['x', 10],
      ['y', 5],
    ] as const) {
      const r = result(n) as TrainingJobResult;
      assert.ok(!(r instanceof Error), `${n}: ${String(r)}`);
      assert.equal(r.outcome, 'finished', `${n}: ${r.reason}`);
      assert.equal(r.steps, 30);
      assert.equal(r.submission?.repo, `miner/repo-${n}-${seq}`);
      assert.ok(r.submittedAt! <= t0 + hours * H, `${n} delivered before its deadline`);
    }
    assert.equal(log.maxTraining, 1, 'one slot: never two jobs training at once');
    assert.deepEqual(log.outcomes.map((o) => o.event).sort(), ['finished', 'finished', 'finished']);
  },
);

test(
  'a job whose trainer fails gives its slot back and still submits its base model; the next job trains',
  { timeout: 120_000 },
  async () => {
    const { log, result } = await runJobs([
      { name: 'broken', hours: 2, plan: { failTraining: true } },
      { name: 'next', hours: 3, plan: { prepareAfter: (l) => l.trainStarts.length > 0 } },
    ]);
    assert.deepEqual(
      log.trainStarts.map((s) => s.taskId),
      ['broken', 'next'],
    );
    const broken = result('broken') as TrainingJobResult;
    assert.equal(broken.outcome, 'failed');
    assert.match(broken.reason, /ran out of memory/);
    assert.equal(
      broken.submission?.repo,
      `miner/repo-broken-${seq}`,
      'the base model was submitted rather than nothing',
    );
    assert.deepEqual(
      log.published.find((p) => p.taskId === 'broken'),
      { ...log.published.find((p) => p.taskId === 'broken')!, trained: false },
    );
    assert.equal((result('next') as TrainingJobResult).outcome, 'finished');
    assert.deepEqual(
      log.outcomes.map((o) => [o.taskId, o.event]),
      [
        ['broken', 'failed'],
        ['next', 'finished'],
      ],
    );
  },
);

test(
  'a terminated job (no cleanup runs) loses its slot at the next liveness check; the queued job trains',
  { timeout: 120_000 },
  async () => {
    const { log, result } = await runJobs(
      [
        { name: 'doomed', hours: 10, plan: { pauseAfterFirst: true } },
        { name: 'waiting', hours: 10, plan: { prepareAfter: (l) => l.training.size > 0 } },
      ],
      async (ids, poolName) => {
        const pool = env.client.workflow.getHandle(poolWorkflowId(poolName));
        await until('doomed holding the slot and waiting queued', async () => {
          const load = await pool.query(poolLoadQuery).catch(() => undefined);
          const doomed = await env.client.workflow
            .getHandle(jobWorkflowId(ids.get('doomed')!))
            .query(jobStatusQuery)
            .catch(() => undefined);
          return doomed?.phase === 'paused' &&
            load?.running[0]?.taskId === ids.get('doomed') &&
            load?.queued[0]?.taskId === ids.get('waiting')
            ? load
            : undefined;
        });
        await env.client.workflow.getHandle(jobWorkflowId(ids.get('doomed')!)).terminate('operator killed it');
        await env.sleep(61_000); // the scheduler's next liveness check
      },
    );
    assert.ok(result('doomed') instanceof Error, "result('doomed') instanceof Error");
    const waiting = result('waiting') as TrainingJobResult;
    assert.equal(waiting.outcome, 'finished', waiting.reason);
    assert.deepEqual(
      log.trainStarts.map((s) => s.taskId),
      ['doomed', 'waiting'],
    );
  },
);

test(
  'a base model the trainer cannot use fails the job at once, naming it, without asking for a slot',
  { timeout: 60_000 },
  async () => {
    const { log, result } = await runJobs([{ name: 'nobase', hours: 1, plan: { badBase: true } }]);
    const err = result('nobase');
    assert.ok(err instanceof Error, 'err instanceof Error');
    assert.match(
      String((err as Error & { cause?: Error }).cause?.message),
      /request\.model 'minerflow-demo\/brown-gpt-small'/,
    );
    assert.deepEqual(log.requests, []);
    assert.deepEqual(log.outcomes, [{ taskId: 'nobase', event: 'failed' }]);
  },
);

test('the scheduler continues as new with its queue when its history grows', { timeout: 60_000 }, async () => {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUES.control,
    workflowBundle: bundle,
    activities: {},
  });
  await worker.runUntil(async () => {
    const h = await env.client.workflow.start(poolScheduler, {
      taskQueue: TASK_QUEUES.control,
      workflowId: `gradients-pool-can-${++seq}`,
      args: [{ pool: 'can', slots: 1, maxHistory: 40 }],
    });
    const first = (await h.describe()).runId;
    // Requests from jobs that do not exist: each grant fails and frees the slot for the next.
    for (let i = 0; i < 12; i++)
      await h.signal('requestSlot', { taskId: `ghost-${i}`, deadline: (i + 1) * H, estimatedSeconds: 60 });
    await advanceUntil(env, 'a new run', async () => ((await h.describe()).runId !== first ? true : undefined));
    const load = await h.query(poolLoadQuery);
    assert.equal(load.pool, 'can');
    assert.ok(load.running.length + load.queued.length <= 12, 'load.running.length + load.queued.length <= 12');
    await h.terminate('test over');
  });
});
