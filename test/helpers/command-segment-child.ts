// A stand-in gpu worker process for the orphan test: runs one command-trainer segment of the PyTorch
// miner and prints TRAINER_RUNNING once the trainer reports progress, so the test can SIGKILL it.
import { createLogger } from '../../infra/log';
import { openStore } from '../../infra/runtime';
import { createCommandTrainer, torchMinerTrainer } from '../../trainers/command';

const [dataDir, storeUri, datasetJson, python] = process.argv.slice(2);
const store = openStore(storeUri);
const trainer = createCommandTrainer(dataDir, store, createLogger({ level: 'warn' }));
let announced = false;
void trainer.trainSegment(
  {
    runId: 'orphan',
    segment: 1,
    dataset: JSON.parse(datasetJson),
    trainer: torchMinerTrainer({ python }),
    model: {
      seqLen: 32,
      dModel: 32,
      nLayer: 1,
      nHead: 2,
      seed: 0,
      backend: 'auto',
      tokenizer: 'bytes',
      vocabSize: 256,
      moe: null,
    },
    training: JSON.parse(process.argv[6]),
    eval: { maxTokens: 1024, batchSize: 16 },
    plannedSteps: 100_000,
    from: null,
    untilStep: 100_000,
    lrScale: 1,
  },
  {
    progress: (p) => {
      if (!announced && p.stage === 'training' && typeof p.step === 'number') {
        announced = true;
        process.stdout.write('TRAINER_RUNNING\n');
      }
    },
    signal: new AbortController().signal,
    attempt: 1,
  },
);
