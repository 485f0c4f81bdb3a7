// Settings for tests: a fresh data folder each time and a fast devnet (useTemporal or useDevnet starts it).
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadSettings, type Settings } from '../../infra/settings';

/** 200 ms blocks; a 78-block (15.6 s) cycle with 2 s commit windows. */
export const FAST_PHASES =
  'Distribute:2,Train:40,MinerCommit1:10,MinerCommit2:10,Submission:4,Validate:4,Merge:4,ValidatorCommit1:2,ValidatorCommit2:2';

export function tempDir(prefix = 'minerflow-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function testSettings(env: Record<string, string> = {}): Settings {
  return loadSettings({
    MINERFLOW_DATA_DIR: tempDir(),
    MINERFLOW_LOCAL_BLOCK_MS: '200',
    MINERFLOW_LOCAL_PHASES: FAST_PHASES,
    ...env,
  });
}

/** A small model and short run: enough to learn, quick on one CPU core. */
export const SMALL_CYCLE = {
  // Bytes: the end-to-end tests' loss margins are per token, set for a 256-token vocabulary (a BPE
  // head would dominate this tiny model); test/tokenizer.test.ts covers the BPE path through the stages.
  model: { seqLen: 32, dModel: 32, nLayer: 1, nHead: 2, tokenizer: 'bytes' as const },
  training: { steps: 60, segmentSteps: 30, batchSize: 8, learningRate: 5e-3, warmupSteps: 5 },
  commit: { minTrainSeconds: 4, reserveSeconds: 0.5 },
  eval: { maxTokens: 4096 },
  score: { timeoutSeconds: 120, pollSeconds: 0.5 },
};
