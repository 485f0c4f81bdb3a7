// The fleet's search attributes: every cycle carries its subnet, hotkey, round and phase (and, for
// job-based subnets, its job and GPU pool), so the Temporal UI and `temporal workflow list --query`
// filter a fleet, and `minerflow status` finds every running cycle. The one place they are named;
// a server must have them registered before a workflow sets them (infra/dev-server.ts does).
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const FLEET_ATTRIBUTES = {
  subnet: defineSearchAttributeKey('MinerflowSubnet', SearchAttributeType.KEYWORD),
  hotkey: defineSearchAttributeKey('MinerflowHotkey', SearchAttributeType.KEYWORD),
  round: defineSearchAttributeKey('MinerflowRound', SearchAttributeType.INT),
  phase: defineSearchAttributeKey('MinerflowPhase', SearchAttributeType.KEYWORD),
  job: defineSearchAttributeKey('MinerflowJob', SearchAttributeType.KEYWORD), // Gradients: the job id
  pool: defineSearchAttributeKey('MinerflowPool', SearchAttributeType.KEYWORD), // Gradients: the GPU pool
} as const;

/** As the Temporal CLI takes them: `--search-attribute Name=Type`. */
export function searchAttributeFlags(): string[] {
  const cliType: Record<string, string> = { KEYWORD: 'Keyword', INT: 'Int' };
  return Object.values(FLEET_ATTRIBUTES).flatMap((k) => ['--search-attribute', `${k.name}=${cliType[k.type]}`]);
}

/** How a hotkey is named in search attributes and metric labels: `wallet/hotkey` (names, never keys). */
export function hotkeyLabel(miner: { wallet: string; hotkey: string }): string {
  return `${miner.wallet}/${miner.hotkey}`;
}
