// The Gradients service's metrics, on the process registry (infra/metrics.ts): offers answered by
// decision and reason class, and how long an answer took (the validator gives up after 3 s).
import { Counter, Histogram } from 'prom-client';
import { registry } from '../../infra/metrics';
import type { Decision } from './acceptance';

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
