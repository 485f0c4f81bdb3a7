import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { InvalidInputError, parseOrExplain } from '../common/config';
import { CycleInputSchema } from '../subnets/connito/config';

test('an empty object is a complete cycle input with the documented defaults', () => {
  const c = parseOrExplain(CycleInputSchema, {}, 'input');
  assert.equal(c.corpus.path, 'sample:brown');
  assert.equal(c.training.steps, 300);
  assert.equal(c.miner.netuid, 102);
});

test('a bad value is named with its field, its value and what is allowed', () => {
  assert.throws(
    () => parseOrExplain(CycleInputSchema, { training: { learningRate: -0.1 } }, 'miningCycle input'),
    (err: Error) => {
      assert.ok(err instanceof InvalidInputError);
      assert.match(err.message, /training\.learningRate = -0\.1/);
      assert.match(err.message, />0/);
      return true;
    },
  );
});

test('every problem is reported at once, unknown keys included', () => {
  assert.throws(
    () => parseOrExplain(CycleInputSchema, { model: { dModel: 30, nHead: 4 }, trainig: {} }, 'input'),
    (err: Error) => /model\.nHead = 4: must divide model\.dModel \(30\)/.test(err.message) && /trainig/.test(err.message),
  );
});

test('secret-looking fields are never echoed', () => {
  const schema = z.object({ TEMPORAL_API_KEY: z.string().min(64) });
  assert.throws(
    () => parseOrExplain(schema, { TEMPORAL_API_KEY: 'sk-very-secret' }, 'environment'),
    (err: Error) => !err.message.includes('sk-very-secret') && err.message.includes('TEMPORAL_API_KEY = (redacted)'),
  );
});
