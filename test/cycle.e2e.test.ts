// End to end on the real Temporal dev server: a full mining cycle, and bad input failing fast.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { checkpointKey, decodeLocationCommit } from '../subnets/connito/commitments';
import { TASK_QUEUES } from '../common/queues';
import { readSplit } from '../curation/curate';
import { disconnectAllChains } from '../infra/chain/subtensor';
import { openChain, openStore } from '../infra/runtime';
import { loadHotkey } from '../infra/wallet';
import { hashSafetensorsFile } from '../model/hash';
import { miningCycle, statusQuery } from '../workflows';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { startTestDevnet } from './helpers/devnet';
import { recordHistory, useTemporal, waitFor, withWorkers } from './helpers/temporal';

const settings = testSettings({ MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;

useTemporal(settings, (t) => ({ env, bundle } = t));

test(
  'a full cycle: curate → train → checkpoint → commit → score, consistent end to end',
  { timeout: 240_000 },
  async () => {
    const input = { ...SMALL_CYCLE, corpus: { path: 'sample:brown:ar' }, curate: { heldOutFraction: 0.1 } };
    const { result } = await withWorkers(env, bundle, settings, async () => {
      const handle = await env.client.workflow.start(miningCycle, {
        taskQueue: TASK_QUEUES.control,
        workflowId: `e2e-cycle-${Date.now()}`,
        args: [input],
      });
      return { result: await handle.result() };
    });

    // The score came from the local validator, for this round, and is finite.
    assert.equal(result.score.status, 'scored');
    assert.ok(Number.isFinite(result.score.validatorLoss!), 'Number.isFinite(result.score.validatorLoss!)');
    assert.equal(result.score.rank, 1);

    // Trained beats untrained on held-out data.
    assert.ok(result.checkpoint.heldOutLoss < result.checkpoint.baselineLoss - 0.5, JSON.stringify(result.checkpoint));

    // The hash of the file in the store = the hash in the result = the hash committed on chain.
    const store = openStore(settings.store);
    const stored = await store.get(`${checkpointKey(result.checkpoint.hash)}/model.safetensors`);
    assert.equal(await hashSafetensorsFile(stored), result.checkpoint.hash);
    const hotkey = await loadHotkey(settings.walletsDir, 'default', 'default');
    const chain = await openChain(settings);
    const onChain = decodeLocationCommit((await chain.commitment(hotkey.address, 102))!.payload);
    assert.equal(onChain?.h, result.checkpoint.hash);
    assert.equal(onChain?.v, 0, 'global_ver: rounds start from no global model yet');
    assert.deepEqual(
      result.commits.map((c) => c.phase),
      ['commit1', 'commit2'],
    );
    assert.ok(
      result.commits.every((c) => c.bytes <= 128),
      'result.commits.every((c) => c.bytes <= 128)',
    );

    // No held-out document was trained on.
    const train = new Set(await readSplit(await store.get(result.dataset.trainKey)));
    const heldOut = await readSplit(await store.get(result.dataset.heldOutKey));
    assert.ok(heldOut.length > 0, 'heldOut.length > 0');
    assert.equal(heldOut.filter((d) => train.has(d)).length, 0);

    await recordHistory(env, settings, result.workflowId, 'mining-cycle');
  },
);

/** Fails `input` and returns the event type names of its history, plus activity attempts. */
async function expectFastFailure(input: unknown, pattern: RegExp): Promise<{ events: string[]; attempts: number[] }> {
  return withWorkers(env, bundle, settings, async () => {
    const handle = await env.client.workflow.start(miningCycle, {
      taskQueue: TASK_QUEUES.control,
      workflowId: `e2e-bad-${Date.now()}`,
      args: [input],
    });
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, `expected the workflow to fail, got ${String(err)}`);
    assert.ok(err.cause instanceof ApplicationFailure, 'err.cause instanceof ApplicationFailure');
    assert.equal(err.cause.nonRetryable, true);
    assert.match(err.cause.message, pattern);
    const history = await handle.fetchHistory();
    const events = (history.events ?? []).map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0]);
    const attempts = (history.events ?? []).flatMap((e) =>
      e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 0] : [],
    );
    return { events, attempts };
  });
}

test(
  'a negative learning rate fails the workflow at once, naming the field, with no activity run',
  { timeout: 240_000 },
  async () => {
    const { events } = await expectFastFailure(
      { training: { learningRate: -0.01 } },
      /training\.learningRate = -0\.01/,
    );
    assert.ok(
      events.includes('EVENT_TYPE_WORKFLOW_EXECUTION_FAILED'),
      "events.includes('EVENT_TYPE_WORKFLOW_EXECUTION_FAILED')",
    );
    assert.ok(!events.includes('EVENT_TYPE_ACTIVITY_TASK_SCHEDULED'), 'validation happens before any activity');
  },
);

test(
  'a corpus outside the data roots fails the cycle, naming corpus.path, after one attempt (no retry loop)',
  { timeout: 240_000 },
  async () => {
    const { events, attempts } = await expectFastFailure(
      { corpus: { path: '/no/such/corpus' } },
      /corpus\.path '\/no\/such\/corpus' is outside the folders corpora may be read from/,
    );
    assert.equal(
      events.filter((e) => e === 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED').length,
      3,
      'preflight (wallet, chain, store; trainer) then curate, nothing after it',
    );
    assert.deepEqual(attempts, [1, 1, 1], 'curate ran once: a corpus outside the roots is not retried');
  },
);

test(
  "two cycles on one hotkey in the same round: the one whose commitment was overwritten reports overwritten with the winning hash, never the other checkpoint's score",
  { timeout: 480_000 },
  async (t) => {
    // A devnet of its own with 10 s commit windows: two cycles share the workers here, and a
    // busy host must not make one of them miss a 2 s window (that would test speed, not conflicts).
    const wide = testSettings({
      MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar',
      MINERFLOW_LOCAL_PHASES:
        'Distribute:2,Train:60,MinerCommit1:50,MinerCommit2:50,Submission:4,Validate:4,Merge:4,ValidatorCommit1:2,ValidatorCommit2:2',
    });
    const devnet = await startTestDevnet(wide);
    t.after(async () => {
      await disconnectAllChains();
      await devnet.close();
    });
    // Different seeds: two different checkpoints for the same hotkey and round.
    const base = { ...SMALL_CYCLE, corpus: { path: 'sample:brown:ar' }, curate: { heldOutFraction: 0.1 } };
    const inputs = [1, 2].map((seed) => ({ ...base, training: { ...base.training, seed } }));
    // Both must plan the same round. When the two plans straddle a round's cut-off (a busy host
    // curating one corpus a little later), the pair cannot conflict: end it and start another.
    const results = await withWorkers(env, bundle, wide, async () => {
      for (let pair = 1; ; pair++) {
        const handles = await Promise.all(
          inputs.map((input, i) =>
            env.client.workflow.start(miningCycle, {
              taskQueue: TASK_QUEUES.control,
              workflowId: `e2e-twin-${pair}-${i}-${Date.now()}`,
              args: [input],
            }),
          ),
        );
        const rounds = await Promise.all(
          handles.map((h) => waitFor('a plan', async () => (await h.query(statusQuery)).plan?.round, 120_000)),
        );
        if (rounds[0] === rounds[1]) return Promise.all(handles.map((h) => h.result()));
        assert.ok(pair < 3, `three pairs in a row planned different rounds: ${rounds.join(', ')}`);
        await Promise.all(handles.map((h) => h.terminate('planned different rounds; trying another pair')));
      }
    });
    const [a, b] = results;
    assert.notEqual(a.checkpoint.hash, b.checkpoint.hash, 'two different checkpoints');
    assert.equal(a.score.round, b.score.round, 'both committed for the same round');
    const hotkey = await loadHotkey(wide.walletsDir, 'default', 'default');
    const onChain = decodeLocationCommit((await (await openChain(wide)).commitment(hotkey.address, 102))!.payload)!.h;
    const winner = results.find((r) => r.checkpoint.hash === onChain)!;
    const loser = results.find((r) => r.checkpoint.hash !== onChain)!;
    assert.ok(winner && loser, `the chain holds ${onChain}`);
    assert.equal(winner.score.status, 'scored');
    assert.equal(loser.score.status, 'overwritten', JSON.stringify(loser.score));
    assert.equal(loser.score.winningHash, winner.checkpoint.hash);
    assert.equal(
      loser.score.validatorLoss,
      undefined,
      'no validator loss is reported for a checkpoint the validators never read',
    );
  },
);
