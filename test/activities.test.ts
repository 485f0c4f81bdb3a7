// Activities on their own (MockActivityEnvironment): what they refuse to do, and how they say it.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { CycleInputSchema } from '../subnets/connito/config';
import type { DatasetRef, SegmentResult } from '../common/types';
import type { CheckpointRef } from '../subnets/connito/types';
import { makeCurate } from '../activities/curate';
import { withTrainerHooks } from '../activities/train';
import { openStore } from '../infra/runtime';
import { hashSafetensorsFile } from '../model/hash';
import { testSettings } from './helpers/settings';
import { gpuActivities } from './helpers/activities';

const input = CycleInputSchema.parse({
  corpus: { path: 'sample:brown:r' },
  curate: { heldOutFraction: 0.3 },
  model: { seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 },
  training: { steps: 4, segmentSteps: 4, batchSize: 2, warmupSteps: 1 },
  eval: { maxTokens: 512 },
});

/** A fresh model's first segment of `steps` steps on `dataset`, with the input's model and training unless given. */
function firstSegment(
  dataset: DatasetRef,
  o: { runId: string; steps: number; stopAt?: number; model?: typeof input.model; training?: typeof input.training },
) {
  return {
    runId: o.runId,
    segment: 1,
    dataset,
    model: o.model ?? input.model,
    training: o.training ?? input.training,
    eval: input.eval,
    plannedSteps: o.steps,
    from: null,
    untilStep: o.steps,
    lrScale: 1,
    stopAt: o.stopAt,
  };
}

/** Fresh settings and store, a mock activity environment, and the input's corpus curated into it. */
async function curated(): Promise<{
  settings: ReturnType<typeof testSettings>;
  store: ReturnType<typeof openStore>;
  env: MockActivityEnvironment;
  dataset: DatasetRef;
}> {
  const settings = testSettings();
  const store = openStore(settings.store);
  const env = new MockActivityEnvironment();
  const dataset: DatasetRef = await env.run(makeCurate(settings, store), {
    corpus: input.corpus,
    curate: input.curate,
  });
  return { settings, store, env, dataset };
}

test('the checkpoint stage refuses the untrained base model (step 0), permanently', async () => {
  const { settings, store, env, dataset } = await curated();
  // Train zero steps: the deadline has already passed when the segment starts.
  const seg: SegmentResult = await env.run(
    gpuActivities(settings, store).trainSegment,
    firstSegment(dataset, { runId: 'base', steps: 4, stopAt: Date.now() - 1 }),
  );
  assert.equal(seg.endStep, 0);
  assert.ok(seg.stoppedEarly, 'seg.stoppedEarly');
  const err = await env
    .run(gpuActivities(settings, store).checkpoint, {
      runId: 'base',
      dataset,
      state: seg.state,
      trainLoss: seg.trainLoss,
      backend: seg.backend,
      round: 0,
      model: input.model,
      eval: input.eval,
    })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  assert.ok(err instanceof ApplicationFailure && err.nonRetryable, String(err));
  assert.match(err.message, /refusing to checkpoint the untrained base model/);
  assert.equal(await store.exists(path.join('checkpoints', seg.state.modelHash, 'model.safetensors')), false);
});

test('a warm start from a state saved with another model shape fails at once (no retries), naming the tensor', async () => {
  const { settings, store, env, dataset } = await curated();
  const seg: SegmentResult = await env.run(
    gpuActivities(settings, store).trainSegment,
    firstSegment(dataset, { runId: 'small', steps: 2 }),
  );
  const wider = { ...input.model, dModel: 32 };
  const err = await env
    .run(
      gpuActivities(settings, store).trainSegment,
      firstSegment(dataset, {
        runId: 'wide',
        steps: 2,
        model: wider,
        training: { ...input.training, initFrom: seg.state.key },
      }),
    )
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  assert.ok(err instanceof ApplicationFailure && err.nonRetryable, String(err));
  assert.match(err.message, /checkpoint tensor '\S+' has shape \[.*\] but the config needs/);
});

test('publishing weights that are already in the store (a deterministic re-run) reuses that checkpoint', async () => {
  const { settings, store, env, dataset } = await curated();
  const publish = async (runId: string): Promise<CheckpointRef> => {
    const seg: SegmentResult = await env.run(
      gpuActivities(settings, store).trainSegment,
      firstSegment(dataset, { runId, steps: 4 }),
    );
    return env.run(gpuActivities(settings, store).checkpoint, {
      runId,
      dataset,
      state: seg.state,
      trainLoss: seg.trainLoss,
      backend: seg.backend,
      round: 0,
      model: input.model,
      eval: input.eval,
    });
  };
  const first = await publish('run-a');
  const second = await publish('run-b'); // same data, seeds and steps: bit-identical weights
  assert.equal(second.hash, first.hash);
  assert.equal(second.key, first.key);
});

test('with an EMA, the checkpoint stage publishes whichever of raw and EMA weights is better on held-out data', async () => {
  const { settings, store, env, dataset } = await curated();
  const training = { ...input.training, steps: 30, segmentSteps: 30, emaDecay: 0.9, learningRate: 1e-2 };
  const seg: SegmentResult = await env.run(
    gpuActivities(settings, store).trainSegment,
    firstSegment(dataset, { runId: 'ema', steps: 30, training }),
  );
  assert.ok(
    seg.emaHeldOutLoss !== undefined && Number.isFinite(seg.emaHeldOutLoss),
    'seg.emaHeldOutLoss !== undefined && Number.isFinite(seg.emaHeldOutLoss)',
  );
  const ref: CheckpointRef = await env.run(gpuActivities(settings, store).checkpoint, {
    runId: 'ema',
    dataset,
    state: seg.state,
    trainLoss: seg.trainLoss,
    backend: seg.backend,
    round: 0,
    model: input.model,
    eval: input.eval,
  });
  assert.equal(ref.weights, ref.emaHeldOutLoss! < ref.rawHeldOutLoss ? 'ema' : 'raw');
  assert.equal(ref.heldOutLoss, Math.min(ref.emaHeldOutLoss!, ref.rawHeldOutLoss));
  const published = await store.get(`checkpoints/${ref.hash}/model.safetensors`);
  assert.equal(await hashSafetensorsFile(published), ref.hash);
  const chosen = await store.get(`${seg.state.key}/${ref.weights === 'ema' ? 'ema' : 'model'}.safetensors`);
  assert.equal(await hashSafetensorsFile(chosen), ref.hash, 'the published file is the chosen weights');
});

test('while a trainer is between reports (loading, evaluating, uploading) its last progress keeps the heartbeat alive', async () => {
  const env = new MockActivityEnvironment();
  const beats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  await env.run(() =>
    withTrainerHooks(async (hooks) => {
      hooks.progress({ stage: 'evaluating' });
      await new Promise((r) => setTimeout(r, 200)); // a long stage with no report of its own (timers fire in order)
    }, 20),
  );
  assert.deepEqual(beats[0], { stage: 'evaluating' });
  assert.ok(beats.length >= 3, `the report was repeated while the stage ran (${beats.length} heartbeats)`);
  assert.ok(
    beats.every((b) => (b as { stage: string }).stage === 'evaluating'),
    "beats.every((b) => (b as { stage: string }).stage === 'evaluating')",
  );
  const after = beats.length;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(beats.length, after, 'no heartbeat after the work ended');
});
