// Connito's validator scoring rule (subnet 102), as plain functions:
//   raw score = max(0, baseline_loss − miner_loss)^1.2
//   unique positive scores ranked: 1st 2.25, 2nd 1.5, 3rd 1.0, others 0;
//   miners with exactly equal loss both get 0 (nobody profits from copying).
export const RANK_REWARDS = [2.25, 1.5, 1.0];

export function rawScore(baselineLoss: number, minerLoss: number): number {
  if (!Number.isFinite(minerLoss) || !Number.isFinite(baselineLoss)) return 0;
  return Math.max(0, baselineLoss - minerLoss) ** 1.2;
}

export interface RoundEntry {
  hotkey: string;
  loss: number; // NaN when the submission was invalid
  baselineLoss: number; // the base model's loss on the same held-out data
}

export interface RoundScore {
  hotkey: string;
  loss: number;
  rawScore: number;
  rank?: number; // 1-based among unique positive scores
  reward: number;
}

export function scoreRound(entries: RoundEntry[]): RoundScore[] {
  const lossCount = new Map<number, number>();
  for (const e of entries) if (Number.isFinite(e.loss)) lossCount.set(e.loss, (lossCount.get(e.loss) ?? 0) + 1);
  const scored = entries.map((e) => {
    const tied = (lossCount.get(e.loss) ?? 0) > 1;
    return {
      hotkey: e.hotkey,
      loss: e.loss,
      rawScore: tied ? 0 : rawScore(e.baselineLoss, e.loss),
      reward: 0,
    } as RoundScore;
  });
  const ranked = scored.filter((s) => s.rawScore > 0).sort((a, b) => b.rawScore - a.rawScore);
  ranked.forEach((s, i) => {
    s.rank = i + 1;
    s.reward = RANK_REWARDS[i] ?? 0;
  });
  return scored;
}
