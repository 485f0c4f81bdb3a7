// runUntilStopped without a server: a worker that will not stop is made to exit after the grace
// period; a clean stop releases the connection and exits 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { runUntilStopped } from '../infra/shutdown';

function fakes(stops: boolean) {
  const calls: string[] = [];
  let resolveRun: () => void = () => undefined;
  const worker = {
    run: () => new Promise<void>((r) => (resolveRun = r)),
    shutdown: () => {
      calls.push('shutdown');
      if (stops) resolveRun();
    },
  } as unknown as Worker;
  const connection = { close: async () => void calls.push('close') } as unknown as NativeConnection;
  return { worker, connection, calls };
}

test('SIGTERM: the worker is shut down, the connection closed, and the process exits 0', async () => {
  const { worker, connection, calls } = fakes(true);
  const code = await new Promise<number>((resolve) => {
    void runUntilStopped(worker, connection, { name: 'test', graceMs: 60_000, log: () => undefined, exit: resolve });
    setImmediate(() => process.emit('SIGTERM'));
  });
  assert.equal(code, 0);
  assert.deepEqual(calls, ['shutdown', 'close']);
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGINT');
});

test('a worker that does not stop within the grace period is made to exit (code 1)', async () => {
  const { worker, connection, calls } = fakes(false);
  const logs: string[] = [];
  const keepAlive = setTimeout(() => undefined, 30_000); // the hard-stop timer is unref'd; a live worker holds the loop open
  const code = await new Promise<number>((resolve) => {
    void runUntilStopped(worker, connection, { name: 'test', graceMs: 200, log: (m) => logs.push(m), exit: resolve });
    setImmediate(() => process.emit('SIGINT'));
  });
  clearTimeout(keepAlive);
  assert.equal(code, 1);
  assert.deepEqual(calls, ['shutdown']);
  assert.match(logs.join('\n'), /did not stop within 0\.2 s; exiting anyway/);
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGINT');
});
