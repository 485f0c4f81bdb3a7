// Connito's score stage on its own (MockActivityEnvironment, a Chain port of our own): what it
// reports when the validators refused the submission, or when another cycle's commitment replaced
// ours before the round was validated.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Chain, ChainScore } from '../infra/chain/chain';
import { ensureHotkey } from '../infra/wallet';
import { encodeLocationCommit } from '../subnets/connito/commitments';
import { MinerSchema } from '../subnets/connito/config';
import { makeAwaitScore } from '../subnets/connito/score';
import type { ScoreReport } from '../subnets/connito/types';
import { testSettings } from './helpers/settings';

const OURS = 'a'.repeat(48);
const THEIRS = 'b'.repeat(48);

/** A chain that has scored round 3 (validation from block 100) and holds `commitment` for the hotkey. */
function chainWith(commitment: { block: number; payload: string }, details: ChainScore['details']): Chain {
  return {
    name: 'fake',
    schedule: async () => ({ block: 120, atMs: Date.now(), blockMs: 12_000, origin: 0, phases: [] }),
    blockNumber: async () => 120,
    uid: async () => 0,
    commit: async () => ({ block: 0 }),
    commitment: async () => commitment,
    commitments: async () => new Map(),
    neurons: async () => [],
    score: async () => ({ uid: 0, updatedAtBlock: 110, incentiveShare: 0.25, details }),
    close: async () => undefined,
  };
}

async function awaitScore(chain: Chain): Promise<ScoreReport> {
  const settings = testSettings();
  await ensureHotkey(settings.walletsDir, 'default', 'default');
  const run = makeAwaitScore(settings, async () => chain);
  return new MockActivityEnvironment().run(run, {
    miner: MinerSchema.parse({}),
    round: 3,
    validateStartBlock: 100,
    hash: OURS,
    timeoutSeconds: 5,
    pollSeconds: 0.1,
  });
}

const scored = { round: 3, loss: 2.5, baselineLoss: 5.5, rawScore: 3.7, rank: 1, reward: 2.25 };

test('our commitment stood through validation: scored, with the validator’s loss', async () => {
  const r = await awaitScore(chainWith({ block: 90, payload: encodeLocationCommit({ h: OURS, v: 0 }) }, scored));
  assert.equal(r.status, 'scored');
  assert.equal(r.validatorLoss, 2.5);
  assert.equal(r.incentiveShare, 0.25);
});

test('a validator that refused the submission: rejected, with its reason (not scored with share 0)', async () => {
  const r = await awaitScore(
    chainWith(
      { block: 90, payload: encodeLocationCommit({ h: OURS, v: 0 }) },
      {
        ...scored,
        loss: NaN,
        rawScore: 0,
        reward: 0,
        rank: undefined,
        reason: 'checkpoint hash x differs from the committed y',
      },
    ),
  );
  assert.equal(r.status, 'rejected');
  assert.match(r.reason ?? '', /hash x differs/);
});

test('another commitment replaced ours before validation: overwritten, naming the hash that won, and no validator loss of its', async () => {
  const r = await awaitScore(chainWith({ block: 95, payload: encodeLocationCommit({ h: THEIRS, v: 0 }) }, scored));
  assert.equal(r.status, 'overwritten');
  assert.equal(r.winningHash, THEIRS);
  assert.equal(r.validatorLoss, undefined);
  assert.equal(r.incentiveShare, undefined);
});

test('a commitment set after validation began (the next round) says nothing about this round', async () => {
  const r = await awaitScore(chainWith({ block: 105, payload: encodeLocationCommit({ h: THEIRS, v: 0 }) }, scored));
  assert.equal(r.status, 'scored');
});
