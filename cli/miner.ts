// `minerflow miner start|status|stop`: cycles back to back (the minerLoop workflow).
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { TASK_QUEUES } from '../common/queues';
import type { Settings } from '../infra/settings';
import { connectClient, workflowUrl } from '../infra/temporal';
import type { MinerInput } from '../subnets/connito/config';
import { loopStatusQuery, minerLoop, stopLoopSignal } from '../workflows';
import { intFlag, loadCycleConfig, parseCommand, str, stringFlag, UsageError } from './args';

/** One loop per hotkey at a time, like cycles (cli/cycle.ts). */
export function minerWorkflowId(miner: MinerInput): string {
  return `minerLoop-${miner.netuid}-${miner.wallet}.${miner.hotkey}`;
}

export async function minerCommand(getSettings: () => Settings, args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'start') return minerStart(getSettings, rest);
  if (sub !== 'status' && sub !== 'stop')
    throw new UsageError(
      sub === undefined ? "'miner' needs a command: start, status or stop" : `unknown 'miner' command '${sub}'`,
    );
  const { positionals } = parseCommand(`miner ${sub}`, rest, {}, { min: 1, max: 1, names: 'a workflow id' });
  const id = positionals[0];
  const settings = getSettings();
  const handle = (await connectClient(settings)).workflow.getHandle(id);
  if (sub === 'stop') {
    await handle.signal(stopLoopSignal);
    console.log(`${id}: will stop after the running cycle`);
    return;
  }
  const s = await handle.query(loopStatusQuery);
  console.log(
    `${id}: ${s.completed} cycles${s.stopping ? ' (stopping)' : ''}; best ${s.best ? `${s.best.hash} held-out ${s.best.heldOutLoss.toFixed(4)} (cycle ${s.best.cycle})` : '-'}`,
  );
  for (const c of s.scores)
    console.log(
      `  cycle ${c.cycle} round ${c.round}: ${c.status}${c.heldOutLoss !== undefined ? ` held-out ${c.heldOutLoss.toFixed(4)}` : ''}${c.incentiveShare !== undefined ? ` share ${c.incentiveShare.toFixed(4)}` : ''}${c.error ? ` — ${c.error}` : ''}`,
    );
}

async function minerStart(getSettings: () => Settings, args: string[]): Promise<void> {
  const { values } = parseCommand('miner start', args, {
    config: { type: 'string' },
    cycles: { type: 'string' },
    id: { type: 'string' },
  });
  const cycles = intFlag('cycles', values.cycles, 1, 1_000_000) ?? null;
  const id = stringFlag('id', values.id);
  const { raw, cycle } = await loadCycleConfig(str(values.config));
  const settings = getSettings();
  const client = await connectClient(settings);
  const workflowId = id ?? minerWorkflowId(cycle.miner);
  try {
    await client.workflow.start(minerLoop, {
      taskQueue: TASK_QUEUES.control,
      workflowId,
      workflowIdConflictPolicy: 'FAIL',
      args: [{ cycle: raw as Record<string, unknown>, cycles }],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      const m = cycle.miner;
      throw new Error(
        `a miner loop for hotkey ${m.wallet}.${m.hotkey} on netuid ${m.netuid} is already running: ${workflowId}; stop it or pass --id`,
        { cause: err },
      );
    }
    throw err;
  }
  console.log(
    `minerflow: started minerLoop ${workflowId} (${cycles ?? 'unlimited'} cycles)\n           ${workflowUrl(settings, workflowId)}`,
  );
}
