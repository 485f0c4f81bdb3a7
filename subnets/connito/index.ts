// Connito (subnet 102): cycle-based expert training on a phase clock. Each round: train until
// commit 1 opens, commit the model hash's signature, then the hash and its location, and read the
// validators' score. The workflow is `miningCycle` (workflow.ts).
import * as path from 'node:path';
import { openHub } from '../../infra/hub/hub';
import type { Subnet } from '../subnet';
import { makeCheckpoint } from './checkpoint';
import { makeCommit } from './commit';
import { makeDistribute } from './distribute-activity';
import { makePreflight } from './preflight';
import { makeAwaitScore } from './score';
import { makeDevnetValidator } from './devnet-validator';
import { measureCommits, measurePreflight, measureScore } from './metrics';

export const connito = {
  name: 'connito',
  netuid: 102,
  intake: 'phase-clock',
  workflows: ['miningCycle'],
  controlActivities: ({ settings, store, chain }) => ({
    preflight: measurePreflight(makePreflight(settings, store, chain)),
    ...measureCommits(makeCommit(settings, chain)),
    distribute: makeDistribute(path.join(settings.dataDir, 'work'), store, chain, () => openHub(settings.hub)),
    awaitScore: measureScore(makeAwaitScore(settings, chain)),
  }),
  gpuActivities: ({ settings, store, trainerFor }) => ({
    checkpoint: makeCheckpoint(path.join(settings.dataDir, 'work'), store, trainerFor, () => openHub(settings.hub)),
  }),
  devnetValidator: makeDevnetValidator,
} satisfies Subnet;
