// `minerflow gradients demo --short` through the same code as the full demo: its own Temporal dev
// server, devnet, local hub, workers and miner service, and the G.O.D-like validator offering three
// tasks. The small base's instruct task is accepted, delivered before its deadline and scores a
// lower test loss than the base on the validator's held-back rows; an 8B model is declined for
// memory, a deadline 42 s away for time.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { runGradientsDemo, summaryTable } from '../cli/gradients-demo';
import { testSettings } from './helpers/settings';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test(
  'short demo: the small instruct job accepted, delivered in time and better than the base; too large and too close declined',
  { timeout: 300_000 },
  async () => {
    const settings = testSettings({
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      MINERFLOW_UI_URL: `http://127.0.0.1:${await freePort()}`,
    });
    const lines: string[] = [];
    const report = await runGradientsDemo(settings, { short: true, pretrainSeconds: 10, print: (l) => lines.push(l) });
    const table = summaryTable(report);
    const [fits, large, close] = report.outcomes;

    assert.equal(fits.accepted, true, fits.reason);
    assert.match(fits.reason, /^small \(full\)/, 'the small base goes to the small pool');
    assert.equal(fits.failure, null, `${fits.failure}\n${lines.join('\n')}`);
    assert.ok(fits.submittedAt! <= fits.deadline!, 'delivered before the deadline');
    assert.equal(fits.job?.outcome, 'finished', fits.job?.reason);
    assert.equal(fits.submission?.repo, `demo-miner/demo-${fits.task.taskId}`);
    assert.ok(
      fits.score!.after < fits.score!.before,
      `test loss ${fits.score!.after} is below the base's ${fits.score!.before}`,
    );

    assert.equal(large.accepted, false);
    assert.match(large.reason, /Meta-Llama-3\.1-8B \(8B params\) needs at least [\d.]+ GiB/);
    assert.equal(close.accepted, false);
    assert.match(close.reason, /cannot finish in .* after the deadline/);

    assert.deepEqual(report.failed, []);
    assert.match(table, /accepted\s+small/);
  },
);
