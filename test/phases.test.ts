import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CONNITO_PHASES,
  cycleLength,
  parsePhases,
  phaseWindow,
  planCommit,
  type ChainSchedule,
} from '../subnets/connito/phases';

test('Connito phases add up to a 500-block cycle', () => {
  assert.equal(cycleLength(CONNITO_PHASES), 500);
  assert.deepEqual(phaseWindow({ origin: 0, phases: CONNITO_PHASES }, 2, 'MinerCommit1'), { start: 1320, end: 1330 });
});

const sched = (block: number): ChainSchedule => ({
  block,
  atMs: 1_000_000,
  blockMs: 12_000,
  origin: 0,
  phases: CONNITO_PHASES,
});

test('commit plan: during training, the current round; commit 2 opens when commit 1 closes', () => {
  const p = planCommit(sched(100), 1_000_000, 1500);
  assert.equal(p.round, 0);
  assert.equal(p.commit1.opensAt, 1_000_000 + (320 - 100) * 12_000);
  assert.equal(p.commit2.opensAt, p.commit1.closesAt);
  assert.equal(p.commit2.closesAt, 1_000_000 + (340 - 100) * 12_000);
  assert.equal(p.validateStartBlock, 420);
});

test('commit plan: too late for this round moves to the next', () => {
  const p = planCommit(sched(330), 1_000_000, 1500); // commit 1 window [320, 330) has closed
  assert.equal(p.round, 1);
  assert.equal(p.commit1.opensAt, 1_000_000 + (820 - 330) * 12_000);
});

test('commit plan: inside the window but closer to its end than the margin moves on too', () => {
  const s: ChainSchedule = { ...sched(329), atMs: 0 };
  assert.equal(planCommit(s, 11_000, 1500).round, 1); // window closes at 12_000 ms
  assert.equal(planCommit(s, 10_000, 1500).round, 0);
});

test('phase schedules parse from configuration and must contain the commit phases', () => {
  assert.deepEqual(parsePhases('MinerCommit1:3, MinerCommit2:4,Validate:1'), [
    { name: 'MinerCommit1', blocks: 3 },
    { name: 'MinerCommit2', blocks: 4 },
    { name: 'Validate', blocks: 1 },
  ]);
  assert.throws(() => parsePhases('Train:10,MinerCommit1:3'), /lacks MinerCommit2/);
  assert.throws(() => parsePhases('Train:x'), /Name:<positive blocks>/);
});
