// A Gradients training job end to end on the real Temporal dev server: a tiny base model on a local
// hub, data prepared from the Brown corpus, the job started through the JobStarter port, trained on
// its pool's gpu worker and delivered to `<namespace>/<expected_repo_name>` before its deadline; and
// the same with the pool's gpu worker SIGKILLed in the middle of training and replaced.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { createHash } from 'node:crypto';
import type { DatasetRef } from '../common/types';
import { exportBrown } from '../curation/brown';
import { openHub } from '../infra/hub/hub';
import { startLocalHub } from '../infra/hub/local-hub';
import { openStore } from '../infra/runtime';
import { jobWorkflowId, type TrainingJobInput, type TrainingJobResult } from '../subnets/gradients/job';
import { temporalJobStarter, temporalPoolView } from '../subnets/gradients/temporal-ports';
import { createControlWorker } from '../workers/control';
import { createGpuWorker } from '../workers/gpu';
import { jobStatusQuery } from '../workflows';
import { publishTinyBase } from './helpers/gradients';
import { pythonScriptAsync } from './helpers/python';
import { testSettings } from './helpers/settings';
import { spawnWorker, useTemporal, waitFor } from './helpers/temporal';

const TOKEN = 'hf_minerflow_test_token';
const BASE = 'minerflow-demo/tiny-gpt';
// No chain: a Gradients job never touches one (an unreachable URL keeps the devnet from starting).
const settings = testSettings({ MINERFLOW_CHAIN: 'ws://127.0.0.1:9' });
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
let hub: { url: string; close(): Promise<void> };
let dir: string;
let dataset: DatasetRef;

/** Instruction-style documents from the Brown corpus (genre a), as plain text: the job's data. */
async function prepareBrown(): Promise<DatasetRef> {
  const brown = await exportBrown(dir, 'a');
  const files = (await fs.readdir(brown)).filter((f) => f.endsWith('.txt')).sort();
  const docs: string[] = [];
  for (const f of files.slice(0, 12)) {
    const text = await fs.readFile(path.join(brown, f), 'utf8');
    docs.push(`### Instruction: continue the report.\n### Response: ${text.slice(0, 1500)}`);
  }
  const store = openStore(settings.store, settings);
  const write = async (name: string, rows: string[]) => {
    const file = path.join(dir, name);
    await fs.writeFile(file, rows.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    await store.put(`gradients-test/${name}`, file);
    return `gradients-test/${name}`;
  };
  return {
    id: createHash('sha256').update(docs.join('\n')).digest('hex').slice(0, 16),
    kind: 'text',
    trainKey: await write('train.jsonl', docs.slice(0, 10)),
    heldOutKey: await write('held-out.jsonl', docs.slice(10)),
    reportKey: await write('report.json', []),
    documentsIn: docs.length,
    trainDocuments: 10,
    heldOutDocuments: docs.length - 10,
    dropped: {},
    reused: false,
  };
}

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'minerflow-gradients-'));
  hub = await startLocalHub({ dir: path.join(dir, 'hub'), token: TOKEN });
  settings.hub = { endpoint: hub.url, token: TOKEN };
  // For G.O.D's own hash code (Python huggingface_hub): this hub, and a cache of its own.
  process.env.HF_ENDPOINT = hub.url;
  process.env.HF_HOME = path.join(dir, 'hf-home');
  await publishTinyBase(settings.hub, dir, BASE);
  dataset = await prepareBrown();
});
after(async () => {
  await hub?.close();
  await fs.rm(dir, { recursive: true, force: true });
});
useTemporal(settings, (t) => ({ env, bundle } = t));

function config(pool: string): TrainingJobInput['config'] {
  return {
    pools: [{ name: pool, slots: 1, memoryBytes: 2 ** 30 }],
    training: {
      steps: 40,
      segmentSteps: 10,
      batchSize: 8,
      learningRate: 5e-3,
      warmupSteps: 5,
      heartbeatTimeoutSeconds: 10,
    },
    eval: { maxTokens: 4096 },
    reserveSeconds: 20,
    hubNamespace: 'miner',
  };
}

function request(taskId: string, minutes: number) {
  return {
    request: {
      model: BASE,
      task_id: taskId,
      hours_to_complete: minutes / 60,
      expected_repo_name: `job-${taskId}`,
      dataset: 'http://validator.invalid/data.json',
      dataset_type: {},
      file_format: 'json' as const,
    },
    taskType: 'InstructTextTask' as const,
    offer: null,
    receivedAt: Date.now(),
  };
}

const decision = (pool: string) => ({
  accepted: true,
  reason: 'fits',
  pool,
  method: 'full' as const,
  estimatedSeconds: 60,
  estimatedFinish: null,
});

test(
  'a job trains on its pool and delivers to the hub before its deadline; the ports start it once and read it',
  { timeout: 300_000 },
  async () => {
    const control = await createControlWorker(settings, env.nativeConnection, bundle, {
      prepareGradientsData: () => Promise.resolve(dataset),
    });
    const gpu = await createGpuWorker(settings, env.nativeConnection, { pool: 'p1' });
    const cfg = config('p1');
    const starter = temporalJobStarter(env.client, cfg);
    const taskId = `e2e-${Date.now()}`;
    const job = { ...request(taskId, 4), decision: decision('p1') };
    const result = await control.runUntil(
      gpu.runUntil(async () => {
        await starter.start(job);
        await starter.start(job); // a repeated training request: a no-op
        const r = (await env.client.workflow.getHandle(jobWorkflowId(taskId)).result()) as TrainingJobResult;
        assert.deepEqual(
          await starter.submission(taskId),
          r.submission,
          'the submission query answers what was delivered',
        );
        assert.equal(await starter.submission('no-such-task'), undefined);
        const [load] = await temporalPoolView(env.client, cfg.pools).loads();
        assert.deepEqual([load.pool, load.running, load.queued], ['p1', [], []], 'the slot was given back');
        return r;
      }),
    );
    assert.equal(result.outcome, 'finished', result.reason);
    assert.ok(result.submittedAt! < result.deadline, 'delivered before the deadline');
    assert.ok(result.steps > 0, 'result.steps > 0');
    assert.equal(result.submission?.repo, `miner/job-${taskId}`);
    assert.match(result.submission?.model_hash ?? '', /^[0-9a-f]{64}$/);
    // What the validator downloads is what the hash names (G.O.D: sha256 over "model.safetensors:<sha256>").
    const got = await openHub(settings.hub).download(
      result.submission!.repo,
      'main',
      'model.safetensors',
      path.join(dir, 'got.safetensors'),
    );
    assert.equal(
      createHash('sha256').update(`model.safetensors:${got.sha256}`).digest('hex'),
      result.submission!.model_hash,
    );
    const god = (await pythonScriptAsync('god_model_hash.py', [result.submission!.repo])).trim();
    assert.equal(
      god,
      result.submission!.model_hash,
      "G.O.D's calculate_model_hash agrees with the submitted model_hash",
    );
    assert.ok(result.heldOutLoss! < Math.log(256), `held-out loss ${result.heldOutLoss} is below chance`);
  },
);

test(
  'the pool gpu worker SIGKILLed in the middle of training, replaced 2 s later: the job still delivers before its deadline',
  { timeout: 300_000 },
  async () => {
    const control = await createControlWorker(settings, env.nativeConnection, bundle, {
      prepareGradientsData: () => Promise.resolve(dataset),
    });
    const workerEnv = { MINERFLOW_GPU_POOL: 'p2', HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN };
    let gpu = spawnWorker('gpu', env, settings, workerEnv);
    try {
      const result = await control.runUntil(async () => {
        const taskId = `crash-${Date.now()}`;
        await temporalJobStarter(env.client, config('p2')).start({ ...request(taskId, 5), decision: decision('p2') });
        const handle = env.client.workflow.getHandle(jobWorkflowId(taskId));
        // Killed while a training segment runs on it (started, heartbeating its steps).
        await waitFor(
          'a training segment under way',
          async () => {
            const pending = (await handle.describe()).raw.pendingActivities ?? [];
            return pending.some((a) => a.activityType?.name === 'trainSegment' && a.heartbeatDetails)
              ? true
              : undefined;
          },
          180_000,
        );
        gpu.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 2000));
        gpu = spawnWorker('gpu', env, settings, workerEnv);
        const r = (await handle.result()) as TrainingJobResult;
        return { ...r, events: (await handle.query(jobStatusQuery)).events };
      });
      assert.ok(
        result.events.some((e) => /segment \d+ \(attempt [2-9]\)/.test(e)),
        `the killed segment was retried on the new worker: ${result.events.join(' | ')}`,
      );
      assert.equal(result.outcome, 'finished', result.reason);
      assert.ok(result.submittedAt! < result.deadline, 'delivered before the deadline');
      assert.equal(result.submission?.repo, `miner/job-${result.taskId}`);
    } finally {
      gpu.kill('SIGKILL');
    }
  },
);
