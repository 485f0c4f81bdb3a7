// Which trainer stands behind the port for a given config (`trainer.kind`). One per kind per
// worker; a new kind is a folder here and a line below.
import type { TrainerInput } from '../common/config';
import type { Logger } from '../infra/log';
import type { CheckpointStore } from '../infra/store/store';
import { createCommandTrainer } from './command';
import { createTfjsTrainer } from './tfjs';
import type { Trainer } from './trainer';

export function createTrainers(
  dataDir: string,
  store: CheckpointStore,
  log: Logger,
): (config: TrainerInput) => Trainer {
  const trainers = new Map<TrainerInput['kind'], Trainer>([
    ['tfjs', createTfjsTrainer(dataDir, store, log.child({ trainer: 'tfjs' }))],
    ['command', createCommandTrainer(dataDir, store, log.child({ trainer: 'command' }))],
  ]);
  return (config) => {
    const t = trainers.get(config.kind);
    if (!t)
      throw new Error(
        `trainer.kind '${config.kind}' is not available on this worker (it has ${[...trainers.keys()].join(', ')})`,
      );
    return t;
  };
}

export type { Trainer } from './trainer';
