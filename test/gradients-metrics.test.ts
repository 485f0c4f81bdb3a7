// The Gradients pools' gauges, read at scrape time from the pools' load: jobs per pool and state,
// and each job's slack to its deadline from the same earliest-deadline-first schedule acceptance uses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { registry } from '../infra/metrics';
import { DEFAULT_POLICY } from '../subnets/gradients/acceptance';
import { watchPools } from '../subnets/gradients/metrics';
import type { PoolLoad } from '../subnets/gradients/ports';

function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (want.every((l) => line.includes(l))) return Number(line.split(' ').at(-1));
  }
  return undefined;
}

test('jobs per pool and deadline slack come from the pools at each scrape, queued jobs behind the running one', async () => {
  const now = Date.now();
  let loads: PoolLoad[] = [
    {
      pool: 'a',
      running: [{ taskId: 'r1', deadline: now + 600_000, estimatedSeconds: 300, startedAt: now - 1000 }],
      queued: [
        { taskId: 'q-late', deadline: now + 700_000, estimatedSeconds: 500, startedAt: null },
        { taskId: 'q-soon', deadline: now + 650_000, estimatedSeconds: 100, startedAt: null },
      ],
    },
    { pool: 'b', running: [], queued: [] },
  ];
  watchPools(
    { loads: async () => loads },
    [
      {
        name: 'a',
        slots: 1,
        memoryBytes: 1,
        trainer: 'tfjs',
        taskTypes: ['InstructTextTask'],
        methods: ['full'],
        tokensPerSecPerBillion: 1,
      },
      {
        name: 'b',
        slots: 2,
        memoryBytes: 1,
        trainer: 'tfjs',
        taskTypes: ['InstructTextTask'],
        methods: ['full'],
        tokensPerSecPerBillion: 1,
      },
    ],
    { ...DEFAULT_POLICY, heavySeconds: 10_000 },
  );
  const text = await registry.metrics();
  assert.equal(sample(text, 'minerflow_gradients_jobs', { pool: 'a', state: 'running' }), 1);
  assert.equal(sample(text, 'minerflow_gradients_jobs', { pool: 'a', state: 'queued' }), 2);
  assert.equal(sample(text, 'minerflow_gradients_jobs', { pool: 'b', state: 'queued' }), 0);
  const slack = (job: string) => sample(text, 'minerflow_gradients_job_deadline_slack_seconds', { job })!;
  assert.ok(Math.abs(slack('r1') - 300) < 2, `running: 600 s left − 300 s to go: ${slack('r1')}`);
  // EDF on one slot: q-soon (earlier deadline) runs 300–400 s from now, q-late 400–900 s: 200 s late.
  assert.ok(Math.abs(slack('q-soon') - 250) < 2, `q-soon finishes at 400 s, due at 650 s: ${slack('q-soon')}`);
  assert.ok(Math.abs(slack('q-late') + 200) < 2, `q-late finishes at 900 s, due at 700 s: ${slack('q-late')}`);

  loads = [{ pool: 'a', running: [], queued: [] }];
  const later = await registry.metrics();
  assert.equal(sample(later, 'minerflow_gradients_jobs', { pool: 'a', state: 'running' }), 0);
  assert.equal(
    sample(later, 'minerflow_gradients_job_deadline_slack_seconds', { job: 'r1' }),
    undefined,
    'finished jobs leave the gauge',
  );
});
