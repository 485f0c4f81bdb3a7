// The service's ports (ports.ts) over the Temporal client: JobStarter starts and reads trainingJob
// workflows; PoolView asks each pool's scheduler for its load. The service holds no job state of
// its own: a restart loses nothing, a repeated training request starts nothing new.
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { TASK_QUEUES } from '../../common/queues';
import { jobWorkflowId, poolWorkflowId, type JobConfig, type TrainingJobInput } from './job';
import type { JobStarter, PoolLoad, PoolView } from './ports';
import type { MinerSubmission } from './protocol';

export function temporalJobStarter(client: Client, config: TrainingJobInput['config']): JobStarter {
  return {
    async start(job) {
      try {
        await client.workflow.start('trainingJob', {
          taskQueue: TASK_QUEUES.control,
          workflowId: jobWorkflowId(job.request.task_id),
          args: [{ ...job, config } satisfies TrainingJobInput],
          // One job per task, ever: a validator repeating a training request (or a retry after a
          // timeout) must not train the task again, even after the first job closed.
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        });
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
    },
    async running(taskId): Promise<boolean> {
      try {
        return (await client.workflow.getHandle(jobWorkflowId(taskId)).describe()).status.name === 'RUNNING';
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return false;
        throw err;
      }
    },
    async submission(taskId): Promise<MinerSubmission | null | undefined> {
      try {
        return await client.workflow.getHandle(jobWorkflowId(taskId)).query<MinerSubmission | null>('submission');
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      }
    },
  };
}

export function temporalPoolView(client: Client, pools: Pick<JobConfig['pools'][number], 'name'>[]): PoolView {
  return {
    async loads(): Promise<PoolLoad[]> {
      return Promise.all(
        pools.map(async ({ name }) => {
          try {
            return await client.workflow.getHandle(poolWorkflowId(name)).query<PoolLoad>('load');
          } catch (err) {
            // No scheduler yet: no job has asked this pool for a slot.
            if (err instanceof WorkflowNotFoundError) return { pool: name, running: [], queued: [] };
            throw err;
          }
        }),
      );
    },
  };
}
