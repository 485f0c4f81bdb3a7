// Connito's cycle as a block schedule: phases of fixed block lengths repeating from an origin
// block. Lengths change between releases, so they always come from configuration or the chain.
import type { CommitPlan } from './types';

export interface PhaseSpec {
  name: string;
  blocks: number;
}

export interface ChainSchedule {
  block: number; // current block
  atMs: number; // when `block` was observed (ms since epoch)
  blockMs: number; // expected block time
  origin: number; // block where cycle 0 starts
  phases: PhaseSpec[];
}

/** Connito's phases at the time of writing (500 blocks, ~100 min at 12 s/block). */
export const CONNITO_PHASES: PhaseSpec[] = [
  { name: 'Distribute', blocks: 20 },
  { name: 'Train', blocks: 300 },
  { name: 'MinerCommit1', blocks: 10 },
  { name: 'MinerCommit2', blocks: 10 },
  { name: 'Submission', blocks: 80 },
  { name: 'Validate', blocks: 10 },
  { name: 'Merge', blocks: 50 },
  { name: 'ValidatorCommit1', blocks: 10 },
  { name: 'ValidatorCommit2', blocks: 10 },
];

export function cycleLength(phases: PhaseSpec[]): number {
  return phases.reduce((a, p) => a + p.blocks, 0);
}

/** [start, end) blocks of `phase` in cycle `round`. */
export function phaseWindow(
  s: Pick<ChainSchedule, 'origin' | 'phases'>,
  round: number,
  phase: string,
): { start: number; end: number } {
  let offset = 0;
  for (const p of s.phases) {
    if (p.name === phase) {
      const start = s.origin + round * cycleLength(s.phases) + offset;
      return { start, end: start + p.blocks };
    }
    offset += p.blocks;
  }
  throw new Error(
    `the chain's phase schedule has no phase '${phase}' (it has ${s.phases.map((p) => p.name).join(', ')})`,
  );
}

export function roundOf(s: Pick<ChainSchedule, 'origin' | 'phases'>, block: number): number {
  return Math.floor((block - s.origin) / cycleLength(s.phases));
}

export function blockTime(s: ChainSchedule, block: number): number {
  return s.atMs + (block - s.block) * s.blockMs;
}

/**
 * The next round whose commit-1 window can still be used: it must not close within `marginMs`
 * (time to sign and get included) and, with `minLeadMs`, must open at least that far ahead (time
 * to train). With `round`, that round's windows as the chain stands now, open or not (a re-plan).
 * Commit 2 goes after MinerCommit1 ends, before MinerCommit2 ends.
 */
export function planCommit(
  s: ChainSchedule,
  nowMs: number,
  marginMs: number,
  minLeadMs = 0,
  round?: number,
): CommitPlan {
  if (round !== undefined) return planFor(s, round);
  for (let r = Math.max(0, roundOf(s, s.block)); ; r++) {
    const c1 = phaseWindow(s, r, 'MinerCommit1');
    const stillOpen = blockTime(s, c1.end) - marginMs > nowMs;
    const timeToTrain = minLeadMs <= 0 || blockTime(s, c1.start) - nowMs >= minLeadMs;
    if (stillOpen && timeToTrain) return planFor(s, r);
  }
}

function planFor(s: ChainSchedule, round: number): CommitPlan {
  const c1 = phaseWindow(s, round, 'MinerCommit1');
  const c2 = phaseWindow(s, round, 'MinerCommit2');
  const validate = phaseWindow(s, round, 'Validate');
  return {
    round,
    atBlock: s.block,
    validateStartBlock: validate.start,
    commit1: {
      round,
      opensAt: blockTime(s, c1.start),
      closesAt: blockTime(s, c1.end),
      startBlock: c1.start,
      endBlock: c1.end,
    },
    commit2: {
      round,
      opensAt: blockTime(s, c1.end),
      closesAt: blockTime(s, c2.end),
      startBlock: c1.end,
      endBlock: c2.end,
    },
    validateOpensAt: blockTime(s, validate.start),
  };
}

/** Parses "Distribute:20,Train:300,…" (the MINERFLOW_LOCAL_PHASES format). */
export function parsePhases(text: string): PhaseSpec[] {
  const phases = text.split(',').map((part) => {
    const [name, blocks] = part.split(':').map((x) => x.trim());
    const n = Number(blocks);
    if (!name || !Number.isInteger(n) || n <= 0)
      throw new Error(`phase '${part}' must look like Name:<positive blocks>`);
    return { name, blocks: n };
  });
  for (const required of ['MinerCommit1', 'MinerCommit2', 'Validate']) {
    if (!phases.some((p) => p.name === required)) throw new Error(`phase schedule '${text}' lacks ${required}`);
  }
  return phases;
}
