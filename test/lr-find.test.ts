// The LR range test as a stage: the lrFind activity on a tiny model, and the suggestion rule on
// curves whose shape we know.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { CycleInputSchema } from '../subnets/connito/config';
import type { DatasetRef, LrFindReport } from '../common/types';
import { makeCurate } from '../activities/curate';
import { REPORT_POINTS } from '../trainers/tfjs/lr-find';
import { openStore } from '../infra/runtime';
import { suggestFromCurve, type LrFindResult } from '../model/lr-finder';
import { testSettings } from './helpers/settings';
import { gpuActivities } from './helpers/activities';

const input = CycleInputSchema.parse({
  corpus: { path: 'sample:brown:r' },
  curate: { heldOutFraction: 0.2 },
  model: { seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 },
  training: { batchSize: 4, lrFind: { enabled: true, steps: 60, floor: 1e-4, ceiling: 1e-2 } },
});

test('lrFind on a tiny model returns a finite, clamped LR and a small curve; the full curve is in the store', async () => {
  const settings = testSettings();
  const store = openStore(settings.store);
  const env = new MockActivityEnvironment();
  const beats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  const dataset: DatasetRef = await env.run(makeCurate(settings, store), {
    corpus: input.corpus,
    curate: input.curate,
  });
  const r: LrFindReport = await env.run(gpuActivities(settings, store).lrFind, {
    runId: 'lr',
    dataset,
    model: input.model,
    training: input.training,
  });
  assert.ok(Number.isFinite(r.suggestedLr) && r.suggestedLr > 0, JSON.stringify(r));
  assert.ok(r.chosenLr >= 1e-4 && r.chosenLr <= 1e-2, `chosen ${r.chosenLr} outside [floor, ceiling]`);
  assert.equal(r.chosenLr, Math.min(1e-2, Math.max(1e-4, r.suggestedLr)));
  assert.ok(r.steps >= 10 && r.steps <= 60, 'r.steps >= 10 && r.steps <= 60');
  assert.ok(
    r.curve.length > 1 && r.curve.length <= REPORT_POINTS,
    'r.curve.length > 1 && r.curve.length <= REPORT_POINTS',
  );
  assert.ok(
    r.curve.every((p, i) => Number.isFinite(p.loss) && (i === 0 || p.lr > r.curve[i - 1].lr)),
    'the curve is finite, by increasing LR',
  );
  // The LR grows from minLr; the loss falls from the untrained model's ~ln(vocabulary) (≥ ln 256).
  assert.ok(Math.abs(r.curve[0].lr - 1e-5) < 1e-9, 'Math.abs(r.curve[0].lr - 1e-5) < 1e-9');
  assert.ok(
    r.curve[0].loss > 5 && Math.min(...r.curve.map((p) => p.loss)) < r.curve[0].loss - 0.2,
    JSON.stringify(r.curve),
  );
  assert.ok(JSON.stringify(r).length < 4000, 'small enough for workflow history');
  const full = JSON.parse(await fs.readFile(await store.get(r.curveKey), 'utf8')) as LrFindResult;
  assert.equal(full.curve.length, r.steps);
  assert.ok(
    beats.some((b) => (b as { stage?: string }).stage === 'lrFind'),
    'heartbeats progress',
  );
});

test('lrFind past its deadline is inconclusive, permanently (the cycle then keeps its configured LR)', async () => {
  const settings = testSettings();
  const store = openStore(settings.store);
  const env = new MockActivityEnvironment();
  const dataset: DatasetRef = await env.run(makeCurate(settings, store), {
    corpus: input.corpus,
    curate: input.curate,
  });
  const err = await env
    .run(gpuActivities(settings, store).lrFind, {
      runId: 'late',
      dataset,
      model: input.model,
      training: input.training,
      stopAt: Date.now() - 1,
    })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  assert.ok(err instanceof ApplicationFailure && err.nonRetryable, String(err));
  assert.equal(err.type, 'LrFindInconclusiveError');
});

/** A range-test curve of the usual shape: flat, a fall, a plateau, then divergence. */
function syntheticCurve(knee: number, plateauEnd: number, n = 120): LrFindResult['curve'] {
  const curve: LrFindResult['curve'] = [];
  for (let i = 0; i < n; i++) {
    const lr = 1e-5 * 1e5 ** (i / (n - 1));
    const x = Math.log10(lr / knee);
    const fall = 2.5 / (1 + Math.exp(4 * x)); // 5.5 far below the knee, 3.0 above it
    const blowUp = lr > plateauEnd ? 3 * Math.log10(lr / plateauEnd) : 0;
    const wobble = 0.02 * Math.sin(i * 1.7); // batch noise on the plateau
    const loss = 3 + fall + blowUp + wobble;
    curve.push({ lr, loss, smoothed: loss });
  }
  return curve;
}

test('the suggestion is min/3 for a run as short as the test, the steepest descent for a run twice as long or more', () => {
  // The shape measured on the default model (120-step test): lowest loss near 0.2, steepest descent near 2e-3.
  const curve = syntheticCurve(2e-3, 0.2);
  const short = suggestFromCurve(curve, curve.length);
  assert.ok(
    Math.abs(short.suggestedLr - short.minLossLr / 3) < 1e-12,
    'Math.abs(short.suggestedLr - short.minLossLr / 3) < 1e-12',
  );
  assert.ok(short.minLossLr > 0.05 && short.minLossLr < 0.3, `lowest loss at ${short.minLossLr}`);
  const long = suggestFromCurve(curve, 3 * curve.length);
  assert.equal(long.suggestedLr, long.steepestLr);
  assert.ok(long.steepestLr > 1e-3 && long.steepestLr < 4e-3, `steepest descent at ${long.steepestLr}`);
  // In between, it falls steadily with the run's length.
  const lrs = [1, 1.2, 1.5, 1.8, 2].map((k) => suggestFromCurve(curve, k * curve.length).suggestedLr);
  assert.ok(
    lrs.every((lr, i) => i === 0 || lr < lrs[i - 1]),
    lrs.join(' > '),
  );
});
