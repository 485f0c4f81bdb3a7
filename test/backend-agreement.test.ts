// The native CPU backend (tfjs-node on libtensorflow, built by scripts/setup-tfjs-node.sh) must
// train the same model as the wasm fallback: a worker that has one or the other must not change
// what a miner produces. Each backend runs in its own process, as in a worker.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tfjsNodeDir } from '../model/backend';

const STEPS = 5;
// float32 kernels summing in different orders (oneDNN/Eigen vs XNNPACK): measured 3e-7 relative on
// the losses and 3e-6 on the weights after 5 AdamW steps; an op that differs moves them by far more.
const LOSS_RTOL = 1e-5;
const WEIGHT_ATOL = 1e-4;

interface Run {
  backend: string;
  losses: number[];
  gradNorms: number[];
  weights: Record<string, number[]>;
}

function train(backend: string): Run {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, 'helpers', 'train-steps.ts'), String(STEPS)],
    { env: { ...process.env, MINERFLOW_BACKEND: backend }, encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  return JSON.parse(out) as Run;
}

const native = process.platform === 'linux' && process.arch === 'x64';

test(
  `tfjs-node (libtensorflow) and wasm agree on ${STEPS} training steps: losses within ${LOSS_RTOL} relative, weights within ${WEIGHT_ATOL}`,
  { skip: native ? false : 'scripts/setup-tfjs-node.sh builds tfjs-node on Linux x86_64 only' },
  () => {
    assert.ok(
      existsSync(path.join(tfjsNodeDir(), '.minerflow-stamp')),
      `tfjs-node is not built in ${tfjsNodeDir()}: run bash scripts/setup-tfjs-node.sh (scripts/setup.sh does)`,
    );
    const wasm = train('wasm');
    const tfn = train('tensorflow');
    assert.equal(wasm.backend, 'wasm');
    assert.equal(tfn.backend, 'tensorflow');
    assert.equal(tfn.losses.length, STEPS);
    tfn.losses.forEach((loss, i) => {
      const rel = Math.abs(loss - wasm.losses[i]) / Math.abs(wasm.losses[i]);
      assert.ok(
        rel <= LOSS_RTOL,
        `step ${i + 1}: loss ${loss} (tensorflow) vs ${wasm.losses[i]} (wasm), ${rel} relative`,
      );
    });
    assert.ok(tfn.losses.at(-1)! < tfn.losses[0], `training lowers the loss: ${tfn.losses.join(', ')}`);
    for (const [name, w] of Object.entries(wasm.weights)) {
      const other = tfn.weights[name];
      assert.equal(other?.length, w.length, `${name}: same shape on both backends`);
      const worst = Math.max(...w.map((x, i) => Math.abs(x - other[i])));
      assert.ok(worst <= WEIGHT_ATOL, `${name}: weights differ by up to ${worst} after ${STEPS} steps`);
    }
  },
);
