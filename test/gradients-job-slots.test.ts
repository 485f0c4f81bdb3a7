// The pool's slot order (subnets/gradients/slots.ts): earliest deadline first, whatever the order of asking.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { enqueue, grant, loadOf, release, type PoolSlots } from '../subnets/gradients/slots';

const H = 3_600_000;
const empty = (slots: number): PoolSlots => ({ pool: 'a', slots, running: [], queued: [] });
const ask = (s: PoolSlots, taskId: string, deadline: number, estimatedSeconds = 600) =>
  enqueue(s, { taskId, deadline, estimatedSeconds });

test('free slots go to the earliest deadlines, not to who asked first', () => {
  let s = empty(2);
  s = ask(s, 'late', 10 * H);
  s = ask(s, 'soon', 2 * H);
  s = ask(s, 'middle', 5 * H);
  const g = grant(s, 1000);
  assert.deepEqual(g.granted, ['soon', 'middle']);
  assert.deepEqual(
    g.state.running.map((j) => [j.taskId, j.startedAt]),
    [
      ['soon', 1000],
      ['middle', 1000],
    ],
  );
  assert.deepEqual(
    g.state.queued.map((j) => j.taskId),
    ['late'],
  );
});

test('a job due sooner that asks while the pool is busy goes ahead of those already waiting', () => {
  let s = grant(ask(empty(1), 'first', 20 * H), 0).state;
  s = ask(s, 'x', 10 * H);
  s = ask(s, 'y', 5 * H);
  assert.deepEqual(grant(s, 1).granted, [], 'no free slot: nothing granted');
  assert.deepEqual(
    loadOf(s).queued.map((j) => j.taskId),
    ['y', 'x'],
  );
  const after = grant(release(s, 'first'), 2);
  assert.deepEqual(after.granted, ['y']);
  assert.deepEqual(grant(release(after.state, 'y'), 3).granted, ['x']);
});

test('equal deadlines: the shorter job first, then the task id; asking twice changes nothing', () => {
  let s = empty(1);
  s = ask(s, 'b', 5 * H, 900);
  s = ask(s, 'a', 5 * H, 900);
  s = ask(s, 'c', 5 * H, 60);
  assert.deepEqual(
    loadOf(s).queued.map((j) => j.taskId),
    ['c', 'a', 'b'],
  );
  assert.equal(ask(s, 'a', 1 * H), s, 'a repeated request (a retried signal) is ignored');
  const g = grant(s, 0);
  assert.equal(ask(g.state, 'c', 1 * H), g.state, 'a running job asking again is ignored');
});

test('release frees a running slot or a place in the queue; an unknown task is a no-op', () => {
  let s = grant(ask(ask(empty(1), 'r', H), 'q', 2 * H), 0).state;
  assert.deepEqual([s.running.map((j) => j.taskId), s.queued.map((j) => j.taskId)], [['r'], ['q']]);
  s = release(s, 'q');
  assert.deepEqual(s.queued, []);
  s = release(s, 'nobody');
  assert.deepEqual(
    s.running.map((j) => j.taskId),
    ['r'],
  );
  assert.deepEqual(grant(release(s, 'r'), 5).state.running, []);
});
