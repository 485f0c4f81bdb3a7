// `minerflow status [--watch]`: one screen for the whole fleet. Every running cycle on every hotkey
// and subnet is found by its search attributes (Temporal visibility), then asked for its details
// with the status query: phase, step, best held-out loss, deadline slack, and the hotkey's last score.
import type { Client } from '@temporalio/client';
import { FLEET_ATTRIBUTES } from '../common/search-attributes';
import type { Settings } from '../infra/settings';
import { connectClient } from '../infra/temporal';
import type { CycleResult, CycleStatus, ScoreReport } from '../subnets/connito/types';
import type { TrainingJobStatus } from '../subnets/gradients/job';
import { jobStatusQuery, statusQuery } from '../workflows';
import { numberFlag, parseCommand, stringFlag, UsageError } from './args';

export interface FleetRow {
  workflowId: string;
  subnet: string;
  hotkey: string;
  round?: number;
  job?: string; // Gradients: the task id
  pool?: string; // Gradients: the GPU pool
  phase: string;
  step?: number;
  plannedSteps?: number;
  bestHeldOut?: number;
  /** ms left before what the cycle must make next: the training deadline, or the commit window it is in. */
  slackMs?: number;
  lastScore?: Pick<ScoreReport, 'status' | 'round' | 'incentiveShare' | 'rawScore'>;
  note?: string; // why details are missing
}

const RUNNING_CYCLES = `ExecutionStatus = 'Running' AND ${FLEET_ATTRIBUTES.subnet.name} IS NOT NULL`;
const FINISHED_CYCLES = `ExecutionStatus = 'Completed' AND ${FLEET_ATTRIBUTES.subnet.name} IS NOT NULL`;

/** Visibility query for the fleet, narrowed by subnet and hotkey when given. */
export function fleetQuery(base: string, filter: { subnet?: string; hotkey?: string }): string {
  const parts = [base];
  if (filter.subnet) parts.push(`${FLEET_ATTRIBUTES.subnet.name} = ${quote(filter.subnet)}`);
  if (filter.hotkey) parts.push(`${FLEET_ATTRIBUTES.hotkey.name} = ${quote(filter.hotkey)}`);
  return parts.join(' AND ');
}

/** Values are names checked by statusCommand (no quotes in them). */
function quote(v: string): string {
  return `'${v}'`;
}

/** The fleet's running cycles, with their details; one visibility query, then one status query each. */
export async function fleetRows(
  client: Client,
  filter: { subnet?: string; hotkey?: string } = {},
  now = Date.now(),
): Promise<FleetRow[]> {
  const rows: FleetRow[] = [];
  for await (const wf of client.workflow.list({ query: fleetQuery(RUNNING_CYCLES, filter) })) {
    const sa = wf.typedSearchAttributes;
    const row: FleetRow = {
      workflowId: wf.workflowId,
      subnet: sa.get(FLEET_ATTRIBUTES.subnet) ?? '?',
      hotkey: sa.get(FLEET_ATTRIBUTES.hotkey) ?? '?',
      round: sa.get(FLEET_ATTRIBUTES.round),
      job: sa.get(FLEET_ATTRIBUTES.job),
      pool: sa.get(FLEET_ATTRIBUTES.pool),
      phase: sa.get(FLEET_ATTRIBUTES.phase) ?? '?',
    };
    const handle = client.workflow.getHandle(wf.workflowId, wf.runId);
    const noStatus = (err: unknown) => {
      row.note = `no status: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
      return undefined;
    };
    // A Gradients job answers jobStatus; a phase-clock cycle answers status.
    if (row.job !== undefined) {
      const status = await handle.query(jobStatusQuery).catch(noStatus);
      if (status) Object.assign(row, jobDetails(status, now));
    } else {
      const status = await handle.query(statusQuery).catch(noStatus);
      if (status) Object.assign(row, details(status, now));
    }
    rows.push(row);
  }
  await addLastScores(client, rows);
  return rows.sort((a, b) => a.subnet.localeCompare(b.subnet) || a.hotkey.localeCompare(b.hotkey));
}

function details(s: CycleStatus, now: number): Partial<FleetRow> {
  const next =
    s.phase === 'commit1'
      ? s.plan?.commit1.closesAt
      : s.phase === 'commit2'
        ? s.plan?.commit2.closesAt
        : ['awaitScore', 'done', 'checkpoint'].includes(s.phase)
          ? undefined
          : s.trainingDeadline;
  return {
    phase: s.phase + (s.paused && s.phase !== 'paused' ? ' (paused)' : ''),
    round: s.round,
    step: s.stepsDone,
    plannedSteps: s.plannedSteps,
    bestHeldOut: s.best?.heldOutLoss,
    slackMs: next === undefined ? undefined : next - now,
    lastScore: s.score,
  };
}

/** A job's slack is to its submission deadline: what the validator waits for. */
function jobDetails(s: TrainingJobStatus, now: number): Partial<FleetRow> {
  return {
    phase: s.phase,
    pool: s.pool,
    step: s.steps,
    bestHeldOut: s.bestHeldOutLoss ?? undefined,
    slackMs: s.submission ? undefined : s.deadline - now,
  };
}

/** A running cycle has no score yet: show its hotkey's latest finished cycle's. */
async function addLastScores(client: Client, rows: FleetRow[]): Promise<void> {
  const wanted = new Set(
    rows.filter((r) => !r.lastScore && r.job === undefined).map((r) => `${r.subnet}\0${r.hotkey}`),
  );
  if (wanted.size === 0) return;
  const latest = new Map<string, { closed: number; workflowId: string; runId: string }>();
  let seen = 0;
  for await (const wf of client.workflow.list({ query: FINISHED_CYCLES })) {
    const key = `${wf.typedSearchAttributes.get(FLEET_ATTRIBUTES.subnet)}\0${wf.typedSearchAttributes.get(FLEET_ATTRIBUTES.hotkey)}`;
    const closed = wf.closeTime?.getTime() ?? 0;
    if (wanted.has(key) && closed > (latest.get(key)?.closed ?? -1))
      latest.set(key, { closed, workflowId: wf.workflowId, runId: wf.runId });
    if (++seen >= 500) break; // the newest few hundred are plenty to find each hotkey's last
  }
  for (const [key, wf] of latest) {
    const result = (await client.workflow
      .getHandle(wf.workflowId, wf.runId)
      .result()
      .catch(() => undefined)) as CycleResult | undefined;
    if (!result?.score) continue;
    for (const r of rows) if (`${r.subnet}\0${r.hotkey}` === key && !r.lastScore) r.lastScore = result.score;
  }
}

const HEADER = [
  'WORKFLOW',
  'SUBNET',
  'HOTKEY',
  'ROUND/JOB',
  'POOL',
  'PHASE',
  'STEP',
  'BEST HELD-OUT',
  'SLACK',
  'LAST SCORE',
];

export function renderFleet(rows: FleetRow[], at = new Date()): string {
  const lines = [
    `minerflow status — ${count(rows.filter((r) => r.job === undefined).length, 'running cycle')}, ${count(rows.filter((r) => r.job !== undefined).length, 'job')} at ${at.toISOString()}`,
  ];
  if (rows.length === 0)
    return lines
      .concat(
        '(none: start a cycle with `minerflow cycle start`, or serve Gradients jobs with `minerflow gradients serve`)',
      )
      .join('\n');
  const table = [
    HEADER,
    ...rows.map((r) => [
      r.workflowId,
      r.subnet,
      r.hotkey,
      r.job ?? (r.round === undefined ? '-' : String(r.round)),
      r.pool ?? '-',
      r.phase,
      r.step === undefined ? '-' : r.plannedSteps === undefined ? String(r.step) : `${r.step}/${r.plannedSteps}`,
      r.bestHeldOut === undefined ? '-' : r.bestHeldOut.toFixed(4),
      r.slackMs === undefined ? '-' : slack(r.slackMs),
      score(r.lastScore),
    ]),
  ];
  const widths = HEADER.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  lines.push(
    ...table.map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    ),
  );
  for (const r of rows) if (r.note) lines.push(`  ${r.workflowId}: ${r.note}`);
  return lines.join('\n');
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function slack(ms: number): string {
  const s = Math.round(ms / 1000);
  const abs = Math.abs(s);
  const text =
    abs >= 3600
      ? `${Math.floor(abs / 3600)}h${Math.floor((abs % 3600) / 60)}m`
      : abs >= 60
        ? `${Math.floor(abs / 60)}m${abs % 60}s`
        : `${abs}s`;
  return s < 0 ? `LATE ${text}` : text;
}

function score(s: FleetRow['lastScore']): string {
  if (!s) return '-';
  if (s.status !== 'scored') return `r${s.round} ${s.status}`;
  return `r${s.round} share ${s.incentiveShare?.toFixed(4) ?? '?'} score ${s.rawScore?.toFixed(4) ?? '?'}`;
}

export async function statusCommand(getSettings: () => Settings, args: string[]): Promise<void> {
  const { values } = parseCommand('status', args, {
    watch: { type: 'boolean' },
    interval: { type: 'string' },
    subnet: { type: 'string' },
    hotkey: { type: 'string' },
  });
  const interval = numberFlag('interval', values.interval, 1, 3600) ?? 5;
  const filter = { subnet: stringFlag('subnet', values.subnet), hotkey: stringFlag('hotkey', values.hotkey) };
  if (filter.subnet !== undefined && !/^[\w-]+$/.test(filter.subnet))
    throw new UsageError(`--subnet '${filter.subnet}' is not a subnet name (letters, digits, _ and -)`);
  if (filter.hotkey !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(filter.hotkey))
    throw new UsageError(`--hotkey '${filter.hotkey}' must be WALLET/HOTKEY (names: letters, digits, _ . -)`);
  const client = await connectClient(getSettings());
  const show = async () => renderFleet(await fleetRows(client, filter));
  if (!values.watch) {
    console.log(await show());
    return;
  }
  let stopped = false;
  process.once('SIGINT', () => (stopped = true));
  while (!stopped) {
    const text = await show();
    // Clear and redraw, so the screen is the fleet now, not a scroll of old ones.
    process.stdout.write(`\x1b[2J\x1b[H${text}\n\n(refreshing every ${interval} s; Ctrl-C stops)\n`);
    await new Promise((r) => setTimeout(r, interval * 1000));
  }
}
