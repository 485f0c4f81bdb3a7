// Task-queue names: the only place they are spelled. Workers poll them; workflows route to them.
export const TASK_QUEUES = {
  /** Workflows and CPU activities: curate, commit, score. */
  control: 'minerflow-control',
  /** Training, evaluation and checkpoint writing: run these workers on GPU hosts. */
  gpu: 'minerflow-gpu',
} as const;

/** The gpu task queue of one Gradients pool (subnets/gradients/config.ts PoolSchema): `minerflow-gpu-<pool>`. */
export function poolQueue(pool: string): string {
  return `${TASK_QUEUES.gpu}-${pool}`;
}
