// The metric recorders without a worker: what a progress event, a segment and a round's score set.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { currentPhase, recordScore, recordTrainProgress, registry } from '../infra/metrics';
import { parseExposition, valueOf } from './helpers/prometheus';

const read = async () => parseExposition(await registry.metrics());

test('a training progress event sets the training gauges; other stages and non-finite values leave them', async () => {
  const labels = { subnet: 'connito', hotkey: 'w/unit', queue: 'minerflow-gpu' };
  recordTrainProgress(labels, {
    stage: 'training',
    step: 7,
    totalSteps: 30,
    loss: 4.5,
    auxLoss: 0.01,
    lr: 3e-3,
    gradNorm: 0.8,
    tokensPerSec: 1234,
  });
  recordTrainProgress(labels, { stage: 'evaluating' });
  recordTrainProgress(labels, { stage: 'training', step: 8, totalSteps: 30, loss: NaN, lr: 2e-3 });
  const m = await read();
  assert.equal(valueOf(m, 'minerflow_train_loss', labels), 4.5, 'a NaN step keeps the last finite loss');
  assert.equal(valueOf(m, 'minerflow_train_step', labels), 8);
  assert.equal(valueOf(m, 'minerflow_train_learning_rate', labels), 2e-3);
  assert.equal(valueOf(m, 'minerflow_train_aux_loss', labels), 0.01);
  assert.equal(valueOf(m, 'minerflow_train_tokens_per_second', labels), 1234);
  assert.equal(
    valueOf(m, 'minerflow_skipped_steps_total', { subnet: 'connito', hotkey: 'w/unit' }),
    0,
    'counters start at 0',
  );
});

test('scores are kept for the last 8 rounds of each hotkey', async () => {
  const labels = { subnet: 'connito', hotkey: 'w/rounds' };
  for (let round = 0; round < 10; round++)
    recordScore(labels, { round, status: 'scored', rawScore: round / 10, incentiveShare: 0.5, validatorLoss: 5 });
  recordScore(labels, { round: 10, status: 'timeout' });
  const m = await read();
  const rounds = m
    .filter((s) => s.name === 'minerflow_score' && s.labels.hotkey === 'w/rounds')
    .map((s) => s.labels.round);
  assert.deepEqual(rounds, ['3', '4', '5', '6', '7', '8', '9'], 'round 10 has no score, and rounds 0–2 fell out');
  assert.equal(valueOf(m, 'minerflow_score_reports_total', { ...labels, status: 'scored' }), 10);
  assert.equal(valueOf(m, 'minerflow_score_reports_total', { ...labels, status: 'timeout' }), 1);
});

test('currentPhase finds the phase and the blocks left in it, rounds after the origin', () => {
  const phases = [
    { name: 'Train', blocks: 10 },
    { name: 'MinerCommit1', blocks: 3 },
    { name: 'MinerCommit2', blocks: 2 },
  ];
  assert.deepEqual(currentPhase({ block: 100, origin: 100, phases }), { phase: 'Train', blocksRemaining: 10 });
  assert.deepEqual(currentPhase({ block: 112, origin: 100, phases }), { phase: 'MinerCommit1', blocksRemaining: 1 });
  assert.deepEqual(currentPhase({ block: 100 + 15 * 7 + 14, origin: 100, phases }), {
    phase: 'MinerCommit2',
    blocksRemaining: 1,
  });
});
