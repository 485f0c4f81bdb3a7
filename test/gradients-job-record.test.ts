// The record of past jobs survives restarts: a new instance on the same file reads the old
// outcomes, other writers' appends are seen, and a line torn by a crash costs only itself.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { FileJobRecord } from '../subnets/gradients/job-record';
import type { JobKind } from '../subnets/gradients/ports';
import { tempDir } from './helpers/settings';

const llama1B: JobKind = { family: 'llama', sizeBucket: '1-3B', taskType: 'InstructTextTask' };
const qwenDpo: JobKind = { family: 'qwen2', sizeBucket: '<1B', taskType: 'DpoTask' };

test('a new record on the same file reads the outcomes written before it', async () => {
  const dir = tempDir();
  const before = FileJobRecord.inDataDir(dir);
  await before.add({ ...llama1B, taskId: 'a', event: 'accepted' });
  await before.add({ ...llama1B, taskId: 'b', event: 'declined' });
  await before.add({ ...llama1B, taskId: 'a', event: 'finished', tokensPerSec: 1000, finalLoss: 1.5, seconds: 60 });
  await before.add({ ...llama1B, taskId: 'c', event: 'accepted' });
  await before.add({ ...llama1B, taskId: 'c', event: 'finished', tokensPerSec: 3000, finalLoss: 2.5 });
  await before.add({ ...qwenDpo, taskId: 'd', event: 'accepted' });
  await before.add({ ...qwenDpo, taskId: 'd', event: 'failed' });

  const after = FileJobRecord.inDataDir(dir); // a restart: nothing but the file
  assert.deepEqual(await after.stats(llama1B), {
    offered: 3,
    accepted: 2,
    finished: 2,
    late: 0,
    failed: 0,
    tokensPerSec: 2000,
    finalLoss: 2,
  });
  assert.deepEqual(await after.stats(qwenDpo), {
    offered: 1,
    accepted: 1,
    finished: 0,
    late: 0,
    failed: 1,
    tokensPerSec: null,
    finalLoss: null,
  });
  assert.equal((await after.stats({ ...qwenDpo, taskType: 'ChatTask' })).offered, 0);

  // Another writer's append (a job workflow's activity) is seen by the next stats().
  await before.add({ ...qwenDpo, taskId: 'e', event: 'late', seconds: 100 });
  assert.equal((await after.stats(qwenDpo)).late, 1);
});

test('a line torn by a crash is skipped and does not swallow the next one', async () => {
  const dir = tempDir();
  const record = FileJobRecord.inDataDir(dir);
  await record.add({ ...llama1B, taskId: 'a', event: 'accepted' });
  await fs.appendFile(record.file, '{"taskId":"torn","fam'); // the process died mid-write
  const reopened = FileJobRecord.inDataDir(dir);
  await reopened.add({ ...llama1B, taskId: 'b', event: 'accepted' });
  const stats = await FileJobRecord.inDataDir(dir).stats(llama1B);
  assert.equal(stats.accepted, 2);
  const fresh = FileJobRecord.inDataDir(dir);
  await fresh.stats(llama1B);
  assert.equal(fresh.skipped, 1);
  assert.equal(path.basename(record.file), 'jobs.jsonl');
  await assert.rejects(record.add({ ...llama1B, taskId: 'x', event: 'won' as 'finished' }), /event/);
});
