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

test('a hotkey or wallet *name* is shown as it is: names are not secrets', () => {
  assert.throws(
    () => parseOrExplain(CycleInputSchema, { miner: { hotkey: '..', wallet: 'a/b' } }, 'miningCycle input'),
    (err: Error) => err.message.includes('miner.hotkey = ".."') && err.message.includes('miner.wallet = "a/b"') && !err.message.includes('(redacted)'),
  );
});

test('null or no input is refused, not silently taken for the defaults', () => {
  assert.throws(() => parseOrExplain(CycleInputSchema, null, 'miningCycle input'), /miningCycle input: \(root\) = null: expected an object \(\{\} for all the defaults\)/);
  assert.throws(() => parseOrExplain(CycleInputSchema, undefined, 'miningCycle input'), /\(root\) = missing/);
  assert.throws(() => parseOrExplain(CycleInputSchema, 'hello', 'miningCycle input'), /\(root\) = "hello"/);
});

test('non-finite numbers are shown as what they are, not as null', () => {
  assert.throws(() => parseOrExplain(CycleInputSchema, { training: { learningRate: Infinity } }, 'input'), /training\.learningRate = Infinity/);
});

test('wallet and hotkey names are one path segment: . and .. and separators are refused', () => {
  for (const bad of ['.', '..', 'a/b', 'a\\b', '', 'x'.repeat(65)]) {
    assert.throws(() => parseOrExplain(CycleInputSchema, { miner: { wallet: bad } }, 'input'), /miner\.wallet = .*letters, digits/, `wallet ${JSON.stringify(bad)}`);
  }
  assert.equal(parseOrExplain(CycleInputSchema, { miner: { wallet: 'my.wallet-1', hotkey: 'h_2' } }, 'input').miner.hotkey, 'h_2');
});
