// BPE training reports progress (for heartbeats) without changing what it learns.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trainBpe, type BpeProgress } from '../model/bpe';
import { trainTokenizer } from '../model/tokenizer';

const texts = Array.from(
  { length: 2500 },
  (_, i) =>
    `document ${i} about ${['rivers', 'mountains', 'forests', 'deserts'][i % 4]} and the ${i % 7} seasons of weather, number ${i * 31}`,
);

test('trainBpe calls onProgress while counting and merging, and learns the same merges as without it', () => {
  const seen: BpeProgress[] = [];
  const withProgress = trainBpe(texts, 256 + 400, { onProgress: (p) => seen.push(p) });
  const without = trainBpe(texts, 256 + 400);
  assert.deepEqual(withProgress.tokenizer.merges, without.tokenizer.merges);
  assert.ok(withProgress.stats.merges > 200, `merges learned: ${withProgress.stats.merges}`);
  const counting = seen.filter((p) => p.stage === 'counting');
  const merging = seen.filter((p) => p.stage === 'merging');
  assert.ok(counting.length >= 2, `every 1000 texts: ${JSON.stringify(counting)}`);
  assert.ok(merging.length >= 2, `every 100 merges: ${merging.length}`);
  assert.ok(
    merging.every((p, i) => i === 0 || p.merges > merging[i - 1].merges),
    'merging.every((p, i) => i === 0 || p.merges > merging[i - 1].merges)',
  );
  assert.equal(merging.at(-1)!.texts, 2500);
});

test('trainTokenizer passes onProgress through and still gives the same tokenizer', () => {
  let calls = 0;
  const a = trainTokenizer({ tokenizer: 'bpe', vocabSize: 256 + 300 }, texts, () => (calls += 1));
  const b = trainTokenizer({ tokenizer: 'bpe', vocabSize: 256 + 300 }, texts);
  assert.ok(calls > 0, 'calls > 0');
  assert.deepEqual(a.encode(texts[7]), b.encode(texts[7]));
  assert.equal(a.vocabSize, b.vocabSize);
});
