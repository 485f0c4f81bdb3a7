import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rawScore, scoreRound } from '../subnets/connito/scoring';

test('raw score is max(0, baseline − loss)^1.2', () => {
  assert.equal(rawScore(5, 3), 2 ** 1.2);
  assert.equal(rawScore(3, 5), 0);
  assert.equal(rawScore(5, NaN), 0);
});

test('unique positive scores are ranked 2.25 / 1.5 / 1.0, the rest get 0', () => {
  const r = scoreRound([
    { hotkey: 'a', loss: 3.0, baselineLoss: 5 },
    { hotkey: 'b', loss: 2.0, baselineLoss: 5 },
    { hotkey: 'c', loss: 4.0, baselineLoss: 5 },
    { hotkey: 'd', loss: 4.5, baselineLoss: 5 },
    { hotkey: 'e', loss: 6.0, baselineLoss: 5 },
  ]);
  const by = Object.fromEntries(r.map((s) => [s.hotkey, s]));
  assert.deepEqual([by.b.reward, by.a.reward, by.c.reward, by.d.reward, by.e.reward], [2.25, 1.5, 1.0, 0, 0]);
  assert.equal(by.b.rank, 1);
  assert.equal(by.e.rank, undefined);
});

test('exactly equal losses both get 0 and do not take a rank', () => {
  const r = scoreRound([
    { hotkey: 'copy1', loss: 2.0, baselineLoss: 5 },
    { hotkey: 'copy2', loss: 2.0, baselineLoss: 5 },
    { hotkey: 'honest', loss: 3.0, baselineLoss: 5 },
  ]);
  const by = Object.fromEntries(r.map((s) => [s.hotkey, s]));
  assert.equal(by.copy1.reward, 0);
  assert.equal(by.copy2.reward, 0);
  assert.equal(by.honest.reward, 2.25);
});
