// Temporal Schedules that start mining cycles on a cron, never two at once.
import { ScheduleOverlapPolicy, type Client, type ScheduleHandle } from '@temporalio/client';
import { TASK_QUEUES } from '../common/queues';
import { miningCycle } from '../workflows';

export async function createCycleSchedule(
  client: Client,
  opts: { scheduleId: string; cron: string; input: unknown },
): Promise<ScheduleHandle> {
  return client.schedule.create({
    scheduleId: opts.scheduleId,
    spec: { cronExpressions: [opts.cron] },
    action: {
      type: 'startWorkflow',
      workflowType: miningCycle,
      taskQueue: TASK_QUEUES.control,
      args: [opts.input],
      workflowId: `${opts.scheduleId}-cycle`,
    },
    // A cycle still running when the next is due: skip the new one, never run two at once.
    policies: { overlap: ScheduleOverlapPolicy.SKIP },
  });
}
