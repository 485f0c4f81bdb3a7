// The Gradients service's metrics, on the process registry (infra/metrics.ts): offers answered by
// decision and reason class, how long an answer took (the validator gives up after 3 s), and at each
// scrape the pools' jobs (running / queued) with each job's slack to its deadline.
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../../infra/metrics';
import { DEFAULT_POLICY, scheduleEdf, type AcceptancePolicy, type Decision } from './acceptance';
import type { Pool } from './config';
import type { PoolView } from './ports';

export const gradientsMetrics = {
  offers: new Counter({
    name: 'minerflow_gradients_offers_total',
    help: "Offers answered, by decision and reason class (pool: where an accepted job trains, 'none' if declined)",
    labelNames: ['subnet', 'pool', 'decision', 'reason'] as const,
    registers: [registry],
  }),
  offerSeconds: new Histogram({
    name: 'minerflow_gradients_offer_answer_seconds',
    help: 'Time from an offer arriving to its answer (the validator waits 3 s)',
    labelNames: ['subnet'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3],
    registers: [registry],
  }),
};

export function recordOffer(decision: Decision, seconds: number): void {
  gradientsMetrics.offers.inc({
    subnet: 'gradients',
    pool: decision.pool ?? 'none',
    decision: decision.accepted ? 'accepted' : 'declined',
    reason: decision.reasonClass,
  });
  gradientsMetrics.offerSeconds.observe({ subnet: 'gradients' }, seconds);
}

/**
 * Reads the pools' load at every scrape (nothing to keep in step): jobs per pool and state, and each
 * job's seconds between its expected finish and its deadline (negative: it will be late), with the
 * same earliest-deadline-first schedule the acceptance policy uses.
 */
export function watchPools(poolView: PoolView, pools: Pool[], policy: AcceptancePolicy = DEFAULT_POLICY): void {
  for (const name of ['minerflow_gradients_jobs', 'minerflow_gradients_job_deadline_slack_seconds'])
    registry.removeSingleMetric(name);
  const slots = new Map(pools.map((p) => [p.name, p.slots]));
  const labels = ['subnet', 'pool', 'state'] as const;
  const jobs = new Gauge({
    name: 'minerflow_gradients_jobs',
    help: 'Jobs holding a slot (running) or waiting for one (queued), per pool',
    labelNames: labels,
    registers: [registry],
    collect: () => refresh(),
  });
  const slack = new Gauge({
    name: 'minerflow_gradients_job_deadline_slack_seconds',
    help: "Seconds between a job's expected finish and its deadline; negative: it will be late",
    labelNames: ['subnet', 'pool', 'job', 'state'] as const,
    registers: [registry],
    collect: () => refresh(),
  });
  // One read of the pools per scrape, shared by both gauges (a scrape collects them concurrently).
  let inFlight: Promise<void> | null = null;
  const refresh = () =>
    (inFlight ??= (async () => {
      const loads = await poolView.loads().catch(() => []);
      const now = Date.now();
      jobs.reset();
      slack.reset();
      for (const { pool, running, queued } of loads) {
        jobs.set({ subnet: 'gradients', pool, state: 'running' }, running.length);
        jobs.set({ subnet: 'gradients', pool, state: 'queued' }, queued.length);
        const finish = scheduleEdf(slots.get(pool) ?? 1, running, queued, now, policy);
        for (const j of running)
          slack.set(
            { subnet: 'gradients', pool, job: j.taskId, state: 'running' },
            (j.deadline - now) / 1000 - j.estimatedSeconds,
          );
        for (const j of queued)
          slack.set(
            { subnet: 'gradients', pool, job: j.taskId, state: 'queued' },
            (j.deadline - finish.get(j.taskId)!) / 1000,
          );
      }
    })().finally(() => (inFlight = null)));
}
