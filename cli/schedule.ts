// `minerflow schedule create|list|delete|pause|unpause`: cycles on a cron (Temporal Schedules, overlap skip).
import type { Settings } from '../infra/settings';
import { createCycleSchedule } from '../infra/schedules';
import { connectClient } from '../infra/temporal';
import { loadCycleConfig, parseCommand, str, stringFlag, UsageError } from './args';

export async function scheduleCommand(getSettings: () => Settings, args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'create': {
      const { values } = parseCommand('schedule create', rest, {
        cron: { type: 'string' },
        config: { type: 'string' },
        id: { type: 'string' },
      });
      const cron = str(values.cron);
      if (!cron?.trim()) throw new UsageError('schedule create needs --cron "<expr>" (e.g. "0 */2 * * *")');
      if (cron.trim().split(/\s+/).length < 5 && !cron.trim().startsWith('@'))
        throw new UsageError(
          `--cron '${cron}': a cron expression has five fields (minute hour day month weekday), e.g. "0 */2 * * *"`,
        );
      const id = stringFlag('id', values.id);
      const { raw } = await loadCycleConfig(str(values.config));
      const client = await connectClient(getSettings());
      const scheduleId = id ?? `minerflow-${Date.now()}`;
      await createCycleSchedule(client, { scheduleId, cron, input: raw });
      console.log(`schedule ${scheduleId} created: miningCycle at "${cron}", overlap policy skip`);
      return;
    }
    case 'list': {
      parseCommand('schedule list', rest, {});
      const client = await connectClient(getSettings());
      for await (const s of client.schedule.list()) {
        const d = await client.schedule.getHandle(s.scheduleId).describe();
        const when = (d.spec.calendars ?? []).map((c) => c.comment || JSON.stringify(c)).join(' | ');
        console.log(
          `${s.scheduleId}  ${when}  overlap ${d.policies.overlap}  ${d.state.paused ? 'paused' : 'active'}  next ${d.info.nextActionTimes[0]?.toISOString() ?? '-'}`,
        );
      }
      return;
    }
    case 'delete':
    case 'pause':
    case 'unpause': {
      const { positionals } = parseCommand(`schedule ${sub}`, rest, {}, { min: 1, max: 1, names: 'a schedule id' });
      const id = positionals[0];
      const h = (await connectClient(getSettings())).schedule.getHandle(id);
      if (sub === 'delete') await h.delete();
      else if (sub === 'pause') await h.pause('paused from the minerflow CLI');
      else await h.unpause('unpaused from the minerflow CLI');
      console.log(`schedule ${id}: ${sub}d`);
      return;
    }
    default:
      throw new UsageError(
        sub === undefined
          ? "'schedule' needs a command: create, list, delete, pause or unpause"
          : `unknown 'schedule' command '${sub}'`,
      );
  }
}
