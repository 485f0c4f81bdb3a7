// `minerflow cycle start|status|pause|resume|stop|extend`: one mining cycle (the miningCycle workflow).
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { TASK_QUEUES } from '../common/queues';
import type { Settings } from '../infra/settings';
import { connectClient, workflowUrl } from '../infra/temporal';
import { cycleWorkflowId, type CycleInput } from '../subnets/connito/config';
import {
  extendTrainingUpdate,
  miningCycle,
  pauseSignal,
  resumeSignal,
  statusQuery,
  stopTrainingSignal,
} from '../workflows';
import { intFlag, loadCycleConfig, numberFlag, parseCommand, str, stringFlag, UsageError } from './args';
import { asciiPlot } from './plot';
import {
  printResult,
  printStarted,
  printStatus,
  progressLine,
  readMetrics,
  trainProgress,
  watchCycle,
  writeLossPlot,
} from './watch';

/** Starts a cycle; a cycle already running under that id (the same hotkey, by default) is refused. */
export async function startCycle(
  client: Client,
  raw: unknown,
  cycle: CycleInput,
  id: string | undefined,
): Promise<WorkflowHandle<typeof miningCycle>> {
  const workflowId = id ?? cycleWorkflowId(cycle.miner);
  try {
    return await client.workflow.start(miningCycle, {
      taskQueue: TASK_QUEUES.control,
      workflowId,
      workflowIdConflictPolicy: 'FAIL',
      args: [raw],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      const m = cycle.miner;
      throw new Error(
        `a cycle for hotkey ${m.wallet}.${m.hotkey} on netuid ${m.netuid} is already running: ${workflowId}; stop it or pass --id`,
        { cause: err },
      );
    }
    throw err;
  }
}

export async function cycleCommand(settings: () => Settings, args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'start':
      return cycleStart(settings, rest);
    case 'status':
      return cycleStatus(settings, rest);
    case 'pause':
    case 'resume':
    case 'stop':
      return cycleSignal(settings, sub, rest);
    case 'extend':
      return cycleExtend(settings, rest);
    default:
      throw new UsageError(
        sub === undefined
          ? "'cycle' needs a command: start, status, pause, resume, stop or extend"
          : `unknown 'cycle' command '${sub}'`,
      );
  }
}

async function cycleStart(getSettings: () => Settings, args: string[]): Promise<void> {
  const { values } = parseCommand('cycle start', args, {
    config: { type: 'string' },
    id: { type: 'string' },
    wait: { type: 'boolean' },
  });
  const id = stringFlag('id', values.id);
  const { raw, cycle } = await loadCycleConfig(str(values.config)); // fail here, before anything starts
  const settings = getSettings();
  const client = await connectClient(settings);
  const handle = await startCycle(client, raw, cycle, id);
  printStarted(settings, handle);
  if (!values.wait) return;
  const result = await watchCycle(handle);
  printResult(settings, result);
  const svg = await writeLossPlot(settings, handle.workflowId, result.segments);
  if (svg) console.log(`  loss curves     ${svg}`);
}

async function cycleStatus(getSettings: () => Settings, args: string[]): Promise<void> {
  const { positionals } = parseCommand('cycle status', args, {}, { min: 1, max: 1, names: 'a workflow id' });
  const id = positionals[0];
  const settings = getSettings();
  const client = await connectClient(settings);
  const handle = client.workflow.getHandle(id);
  const desc = await handle.describe();
  console.log(`${id}: ${desc.status.name}  ${workflowUrl(settings, id)}`);
  const status = await handle.query(statusQuery).catch(() => undefined);
  if (status) printStatus(status);
  else console.log('(no worker answered the status query; start a control worker to see the cycle state)');
  const progress = trainProgress(desc.raw.pendingActivities ?? []);
  if (progress) console.log(progressLine(progress, status?.plannedSteps ?? progress.totalSteps));
  const metrics = status
    ? await readMetrics(
        settings,
        status.segments.map((s) => s.metricsKey),
      )
    : [];
  if (metrics.length > 1) {
    console.log('\ntraining loss by step (all segments, backtracks included)');
    console.log(
      asciiPlot(
        metrics.map((m) => m.loss),
        { label: `${metrics.length} steps` },
      ),
    );
  }
  const svg = status && (await writeLossPlot(settings, id, status.segments));
  if (svg) console.log(`loss curves: ${svg}`);
}

async function cycleSignal(
  getSettings: () => Settings,
  which: 'pause' | 'resume' | 'stop',
  args: string[],
): Promise<void> {
  const { positionals } = parseCommand(`cycle ${which}`, args, {}, { min: 1, max: 1, names: 'a workflow id' });
  const id = positionals[0];
  const handle = (await connectClient(getSettings())).workflow.getHandle(id);
  await handle.signal(which === 'pause' ? pauseSignal : which === 'resume' ? resumeSignal : stopTrainingSignal);
  console.log(`sent ${which} to ${id}`);
}

async function cycleExtend(getSettings: () => Settings, args: string[]): Promise<void> {
  const { values, positionals } = parseCommand(
    'cycle extend',
    args,
    { steps: { type: 'string' }, seconds: { type: 'string' } },
    { min: 1, max: 1, names: 'a workflow id and one of --steps N or --seconds S' },
  );
  const steps = intFlag('steps', values.steps, 1, 10_000_000);
  const seconds = numberFlag('seconds', values.seconds, 0, 7 * 24 * 3600);
  if ((steps === undefined) === (seconds === undefined))
    throw new UsageError('cycle extend needs one of --steps N or --seconds S (not both)');
  const id = positionals[0];
  const handle = (await connectClient(getSettings())).workflow.getHandle(id);
  const r = await handle.executeUpdate(extendTrainingUpdate, { args: [steps !== undefined ? { steps } : { seconds }] });
  console.log(`${id}: training now plans ${r.plannedSteps} steps`);
}
