// Recorded histories of real cycles (test/fixtures/*.history.json, written by the e2e test with
// RECORD_FIXTURES=1) must replay against today's workflow code: a change that breaks determinism
// for cycles already running fails here, not in production.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';

Runtime.install({ logger: new DefaultLogger('WARN') });

test('recorded cycle histories replay without non-determinism', async () => {
  const dir = path.join(__dirname, 'fixtures');
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.history.json'));
  assert.ok(files.length > 0, 'at least one recorded history');
  for (const f of files) {
    const { workflowId, ...history } = JSON.parse(await fs.readFile(path.join(dir, f), 'utf8')) as {
      workflowId?: string;
    };
    await Worker.runReplayHistory({ workflowsPath: require.resolve('../workflows') }, history, workflowId ?? f);
  }
});
