// Who gets a pool's slots: earliest deadline first, not first come. A job that asked later but is due
// sooner trains sooner; a long job due late does not block short ones due soon. Plain functions over
// the pool's state (no Temporal imports): the pool scheduler workflow (workflow.ts) keeps the state.
import type { PoolJob, PoolLoad } from './ports';

export interface SlotRequest {
  taskId: string;
  deadline: number; // epoch ms
  estimatedSeconds: number;
}

export interface PoolSlots {
  pool: string;
  slots: number;
  running: PoolJob[];
  queued: PoolJob[];
}

/** Deadline order: the earliest deadline first; at equal deadlines the shorter job, then the task id (a stable order). */
export function byDeadline(a: PoolJob, b: PoolJob): number {
  return a.deadline - b.deadline || a.estimatedSeconds - b.estimatedSeconds || (a.taskId < b.taskId ? -1 : 1);
}

/** Adds a request to the queue; a task already running or queued is not added twice (a retried signal). */
export function enqueue(s: PoolSlots, req: SlotRequest): PoolSlots {
  if (s.running.some((j) => j.taskId === req.taskId) || s.queued.some((j) => j.taskId === req.taskId)) return s;
  const job: PoolJob = { ...req, startedAt: null };
  return { ...s, queued: [...s.queued, job].sort(byDeadline) };
}

/** Gives free slots to the queued jobs due first; returns the new state and the task ids granted. */
export function grant(s: PoolSlots, now: number): { state: PoolSlots; granted: string[] } {
  const free = Math.max(0, s.slots - s.running.length);
  const queued = [...s.queued].sort(byDeadline);
  const next = queued.slice(0, free).map((j) => ({ ...j, startedAt: now }));
  return {
    state: { ...s, running: [...s.running, ...next], queued: queued.slice(free) },
    granted: next.map((j) => j.taskId),
  };
}

/** Frees a task's slot (or its place in the queue): finished, failed, cancelled or gone. */
export function release(s: PoolSlots, taskId: string): PoolSlots {
  return {
    ...s,
    running: s.running.filter((j) => j.taskId !== taskId),
    queued: s.queued.filter((j) => j.taskId !== taskId),
  };
}

export function loadOf(s: PoolSlots): PoolLoad {
  return { pool: s.pool, running: s.running, queued: [...s.queued].sort(byDeadline) };
}
