// Loss curves as SVG and the progress line: what `cycle status`, `cycle start --wait` and the demo draw.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lossCurvesSvg } from '../cli/plot';
import { progressLine } from '../cli/watch';

test('lossCurvesSvg draws training loss by step and held-out loss at each segment end', () => {
  const steps = Array.from({ length: 60 }, (_, i) => ({ step: i + 1, loss: 5 - i * 0.05 }));
  const svg = lossCurvesSvg('cycle-x', steps, [
    { endStep: 30, heldOutLoss: 4.2 },
    { endStep: 60, heldOutLoss: null }, // a NaN storm: no point, no crash
  ])!;
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /cycle-x: loss by step/);
  const polylines = [...svg.matchAll(/<polyline [^>]*points="([^"]+)"/g)].map((m) => m[1].split(' ').length);
  assert.deepEqual(polylines, [60], 'one line of 60 steps (one held-out point is no line)');
  assert.equal([...svg.matchAll(/<circle [^>]*fill="#d62728"/g)].length, 1, 'one finite held-out point');
  assert.equal(lossCurvesSvg('empty', [], [{ endStep: 30, heldOutLoss: null }]), undefined);
});

test('the progress line measures the whole plan, not the running segment', () => {
  const p = {
    stage: 'training' as const,
    segment: 2,
    resumeFrom: null,
    step: 150, // segment 2 ends at 200 of a 300-step plan
    totalSteps: 200,
    loss: 3.21,
    auxLoss: 0,
    lr: 0.003,
    gradNorm: 1,
    tokensPerSec: 5000,
    restores: 0,
  };
  const line = progressLine(p, 300);
  assert.match(line, /^plan \[#{15}\.{15}\] step 150\/300 \| segment 2 loss 3\.210/);
});
