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
      assert.ok(err instanceof InvalidInputError, 'err instanceof InvalidInputError');
      assert.match(err.message, /training\.learningRate = -0\.1/);
      assert.match(err.message, />0/);
      return true;
    },
  );
});

test('every problem is reported at once, unknown keys included', () => {
  assert.throws(
    () => parseOrExplain(CycleInputSchema, { model: { dModel: 30, nHead: 4 }, trainig: {} }, 'input'),
    (err: Error) =>
      /model\.nHead = 4: must divide model\.dModel \(30\)/.test(err.message) && /trainig/.test(err.message),
  );
});

test('secret-looking fields are never echoed', () => {
  const schema = z.object({ TEMPORAL_API_KEY: z.string().min(64) });
  assert.throws(
    () => parseOrExplain(schema, { TEMPORAL_API_KEY: 'sk-very-secret' }, 'environment'),
    (err: Error) => !err.message.includes('sk-very-secret') && err.message.includes('TEMPORAL_API_KEY = (redacted)'),
  );
});

test('settings whose names merely contain "token" are shown: model.tokenizer, eval.maxTokens', () => {
  assert.throws(
    () =>
      parseOrExplain(CycleInputSchema, { model: { tokenizer: 'words' }, eval: { maxTokens: 0 } }, 'miningCycle input'),
    (err: Error) =>
      err.message.includes('model.tokenizer = "words"') &&
      err.message.includes('eval.maxTokens = 0') &&
      !err.message.includes('(redacted)'),
  );
  const schema = z.object({ apiToken: z.string().min(64), TEMPORAL_TOKEN: z.string().min(64) });
  assert.throws(
    () => parseOrExplain(schema, { apiToken: 'tok-secret-1', TEMPORAL_TOKEN: 'tok-secret-2' }, 'environment'),
    (err: Error) =>
      !err.message.includes('tok-secret') &&
      err.message.includes('apiToken = (redacted)') &&
      err.message.includes('TEMPORAL_TOKEN = (redacted)'),
  );
});

test('training.initFrom must be a plain relative store key, refused at validation naming the field', () => {
  for (const bad of ['../../etc', '/etc/passwd', 'runs/../../x', 'runs//x', './runs', 'runs\\x', 'C:/x', '']) {
    assert.throws(
      () => parseOrExplain(CycleInputSchema, { training: { initFrom: bad } }, 'miningCycle input'),
      (err: Error) => err.message.includes(`training.initFrom = ${JSON.stringify(bad)}: must be a store key`),
      bad,
    );
  }
  assert.equal(
    parseOrExplain(CycleInputSchema, { training: { initFrom: 'runs/cycle-1/step-100' } }, 'miningCycle input').training
      .initFrom,
    'runs/cycle-1/step-100',
  );
});

test('a check that fails on a field left out shows its default, not "missing"', () => {
  assert.throws(
    () => parseOrExplain(CycleInputSchema, { training: { steps: 10 } }, 'miningCycle input'),
    (err: Error) =>
      err.message.includes('training.warmupSteps = 20 (the default): must not exceed training.steps (10)'),
  );
  assert.throws(() => parseOrExplain(z.object({ a: z.number() }), {}, 'x'), /a = missing:/);
});

test('a hotkey or wallet *name* is shown as it is: names are not secrets', () => {
  assert.throws(
    () => parseOrExplain(CycleInputSchema, { miner: { hotkey: '..', wallet: 'a/b' } }, 'miningCycle input'),
    (err: Error) =>
      err.message.includes('miner.hotkey = ".."') &&
      err.message.includes('miner.wallet = "a/b"') &&
      !err.message.includes('(redacted)'),
  );
});

test('null or no input is refused, not silently taken for the defaults', () => {
  assert.throws(
    () => parseOrExplain(CycleInputSchema, null, 'miningCycle input'),
    /miningCycle input: \(root\) = null: expected an object \(\{\} for all the defaults\)/,
  );
  assert.throws(() => parseOrExplain(CycleInputSchema, undefined, 'miningCycle input'), /\(root\) = missing/);
  assert.throws(() => parseOrExplain(CycleInputSchema, 'hello', 'miningCycle input'), /\(root\) = "hello"/);
});

test('non-finite numbers are shown as what they are, not as null', () => {
  assert.throws(
    () => parseOrExplain(CycleInputSchema, { training: { learningRate: Infinity } }, 'input'),
    /training\.learningRate = Infinity/,
  );
});

test('wallet and hotkey names are one path segment: . and .. and separators are refused', () => {
  for (const bad of ['.', '..', 'a/b', 'a\\b', '', 'x'.repeat(65)]) {
    assert.throws(
      () => parseOrExplain(CycleInputSchema, { miner: { wallet: bad } }, 'input'),
      /miner\.wallet = .*letters, digits/,
      `wallet ${JSON.stringify(bad)}`,
    );
  }
  assert.equal(
    parseOrExplain(CycleInputSchema, { miner: { wallet: 'my.wallet-1', hotkey: 'h_2' } }, 'input').miner.hotkey,
    'h_2',
  );
});
