// Keeps a workflow's fleet search attributes (common/search-attributes.ts) current: subnet and
// hotkey once, then the phase and round whenever they change. Deterministic: it upserts only on a
// change the workflow itself made, so a replay issues the same commands.
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { upsertSearchAttributes } from '@temporalio/workflow';
import { FLEET_ATTRIBUTES } from '../common/search-attributes';

export interface FleetIdentity {
  subnet: string;
  hotkey: string; // hotkeyLabel(): `wallet/hotkey`
}

/** `enabled` is false for histories recorded before the attributes existed (a patch): they replay without upserts. */
export function fleetSearchAttributes(enabled: boolean, who: FleetIdentity) {
  let last: { phase?: string; round?: number } | undefined;
  return {
    labels: who,
    update(now: { phase: string; round?: number }): void {
      if (!enabled) return;
      const pairs: SearchAttributeUpdatePair[] = [];
      if (!last)
        pairs.push(
          { key: FLEET_ATTRIBUTES.subnet, value: who.subnet },
          { key: FLEET_ATTRIBUTES.hotkey, value: who.hotkey },
        );
      if (now.phase !== last?.phase) pairs.push({ key: FLEET_ATTRIBUTES.phase, value: now.phase });
      if (now.round !== undefined && now.round !== last?.round)
        pairs.push({ key: FLEET_ATTRIBUTES.round, value: now.round });
      if (pairs.length > 0) upsertSearchAttributes(pairs);
      last = { phase: now.phase, round: now.round ?? last?.round };
    },
  };
}
