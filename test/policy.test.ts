import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PolicySchema } from '../common/config';
import type { SegmentResult } from '../common/types';
import { decide, evaluationsWithoutImprovement, extensionProblem, type PolicyState } from '../workflows/policy';

const cfg = PolicySchema.parse({ patience: 2, backtrackThreshold: 0.05, maxBacktracks: 1, lrBackoff: 0.5 });

function seg(n: number, heldOut: number, extra: Partial<SegmentResult> = {}): SegmentResult {
  return {
    segment: n,
    attempt: 1,
    startStep: (n - 1) * 10,
    endStep: n * 10,
    state: { key: `s${n}`, step: n * 10, modelHash: 'h' },
    trainLoss: heldOut,
    heldOutLoss: heldOut,
    skippedBatches: 0,
    nonFinite: false,
    stoppedEarly: false,
    seconds: 1,
    tokensPerSec: 1000,
    lr: 1e-3,
    backend: 'wasm',
    metricsKey: 'm',
    ...extra,
  };
}

function stateOf(segments: SegmentResult[], extra: Partial<PolicyState> = {}): PolicyState {
  const finite = segments.filter((s) => Number.isFinite(s.heldOutLoss) && !s.nonFinite);
  const best = finite.reduce<SegmentResult | undefined>(
    (b, s) => (!b || s.heldOutLoss < b.heldOutLoss ? s : b),
    undefined,
  );
  return {
    segments,
    best,
    plannedSteps: 100,
    extraStepsTaken: 0,
    backtracks: 0,
    lrScale: 1,
    stopRequested: false,
    segmentSteps: 10,
    now: 0,
    ...extra,
  };
}

const table: {
  name: string;
  segments: SegmentResult[];
  extra?: Partial<PolicyState>;
  policy?: Partial<typeof cfg>;
  action: string;
  reason: RegExp;
}[] = [
  {
    name: 'improving mid-plan continues',
    segments: [seg(1, 3), seg(2, 2.8)],
    action: 'continue',
    reason: /held-out 2\.8000/,
  },
  {
    name: 'operator stop finishes',
    segments: [seg(1, 3)],
    extra: { stopRequested: true },
    action: 'finish',
    reason: /stop requested/,
  },
  {
    name: 'a loss spike backtracks to the best with a lower LR',
    segments: [seg(1, 3), seg(2, 2.5), seg(3, 2.7)],
    action: 'backtrack',
    reason: /worse than the best 2\.5000.*step 20.*LR × 0\.5000/,
  },
  {
    name: 'a small regression is tolerated',
    segments: [seg(1, 3), seg(2, 2.5), seg(3, 2.53)],
    action: 'continue',
    reason: /held-out/,
  },
  {
    name: 'a NaN storm backtracks',
    segments: [seg(1, 3), seg(2, NaN, { nonFinite: true, skippedBatches: 9 })],
    action: 'backtrack',
    reason: /non-finite loss \(9 batches skipped\)/,
  },
  {
    name: 'no backtrack left: finish with the best',
    segments: [seg(1, 3), seg(2, 3.5)],
    extra: { backtracks: 1 },
    action: 'finish',
    reason: /already backtracked 1 times/,
  },
  {
    name: 'patience exhausted stops early',
    segments: [seg(1, 3), seg(2, 2.9995), seg(3, 3.0)],
    action: 'earlyStop',
    reason: /no held-out improvement for 2 evaluations/,
  },
  {
    name: 'the deadline finishes training',
    segments: [seg(1, 3, { stoppedEarly: true })],
    action: 'finish',
    reason: /deadline reached at step 10/,
  },
  { name: 'planned steps done finishes', segments: [seg(10, 2)], action: 'finish', reason: /planned 100 steps done/ },
  {
    name: 'still improving at the end extends when allowed',
    segments: [seg(9, 2.1), seg(10, 2)],
    policy: { autoExtend: true, maxExtraSteps: 50 },
    action: 'extend',
    reason: /extending by 10/,
  },
  {
    name: 'no extension past the deadline',
    segments: [seg(9, 2.1), seg(10, 2)],
    policy: { autoExtend: true, maxExtraSteps: 50 },
    extra: { now: 0, deadline: 500 },
    action: 'finish',
    reason: /planned 100 steps done/,
  },
];

for (const row of table) {
  test(`policy: ${row.name}`, () => {
    const d = decide({ ...cfg, ...row.policy }, stateOf(row.segments, row.extra));
    assert.equal(d.action, row.action, d.reason);
    assert.match(d.reason, row.reason);
    assert.equal(d.afterSegment, row.segments.at(-1)!.segment);
  });
}

test('evaluations without improvement count from the last real improvement', () => {
  assert.equal(evaluationsWithoutImprovement([seg(1, 3), seg(2, 2), seg(3, 2.5), seg(4, 2.2)], 0.001), 2);
  assert.equal(evaluationsWithoutImprovement([seg(1, 3), seg(2, 2)], 0.001), 0);
});

test('an extension that would run past the commit deadline is rejected with the numbers', () => {
  const s = { segments: [seg(1, 3)], plannedSteps: 100, now: 0, deadline: 12_000 }; // 100 ms per step; 90 steps left = 9 s
  assert.equal(extensionProblem(50, { ...s, deadline: 20_000 }, 10), undefined);
  assert.match(
    extensionProblem(50, s, 10) ?? '',
    /would end training at .*, after the deadline .* \(about 30 more steps fit\)/,
  );
  assert.match(extensionProblem(-5, s, 10) ?? '', /positive whole number/);
  assert.match(extensionProblem(5, { ...s, segments: [] }, 0) ?? '', /no training speed measured yet/);
});
