// Training memory over 10,000 steps of a tiny model, with two replicas (a worker thread on
// wasm), gradient accumulation, an EMA and one planted restore: the tensors held (count and bytes)
// must be identical at step 100 and step 10,000, and RSS / heap must stay within a bound. Too long
// for the test suite (minutes on wasm); test/trainer.test.ts checks the tensors over 300 steps.
import * as tf from '@tensorflow/tfjs-core';
import { CycleInputSchema } from '../subnets/connito/config';
import { initBackend } from '../model/backend';
import { disposeWeights, initWeights, type GptConfig } from '../model/gpt';
import { Rng } from '../model/rng';
import { Trainer } from '../model/trainer';
import { benchLine, note } from './report';

const STEPS = 10_000;
const FIRST = 100;
// Allowed growth from step 100 to the end: allocator and JIT noise, never a per-step leak
// (the exact tensor counts catch small leaks; this catches large ones outside tfjs).
const RSS_SLACK_MB = 128; // RSS swings ±60 MB with GC timing here (measured), so the bound sits above that
const HEAP_SLACK_MB = 16;

export async function trainMemoryBench(): Promise<void> {
  const backend = await initBackend('auto', () => undefined);
  const cycle = CycleInputSchema.parse({});
  const cfg: GptConfig = { vocabSize: 256, seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 };
  const rng = new Rng(1);
  const data = Uint8Array.from({ length: 1 << 16 }, () => rng.int(256));
  const weights = initWeights(cfg, 0);
  const trainer = new Trainer(
    cfg,
    weights,
    { ...cycle.training, steps: STEPS, batchSize: 4, gradAccumSteps: 2, emaDecay: 0.999, skipLimit: 3, threads: 2 },
    data,
  );
  trainer.plantNonFinite = (step) => step >= 5000 && step < 5003; // one restore mid-run
  const mb = (bytes: number) => bytes / (1 << 20);
  try {
    await trainer.run({ untilStep: FIRST });
    global.gc?.();
    const early = {
      tensors: tf.memory(),
      workers: trainer.replicaMemory(),
      rss: mb(process.memoryUsage().rss),
      heap: mb(process.memoryUsage().heapUsed),
    };
    const t0 = performance.now();
    const rssAlong: string[] = [];
    for (let at = 1000; at <= STEPS; at += 1000) {
      await trainer.run({ untilStep: at });
      rssAlong.push(mb(process.memoryUsage().rss).toFixed(0));
    }
    const seconds = (performance.now() - t0) / 1000;
    global.gc?.();
    const late = {
      tensors: tf.memory(),
      workers: trainer.replicaMemory(),
      rss: mb(process.memoryUsage().rss),
      heap: mb(process.memoryUsage().heapUsed),
    };
    note(
      `${STEPS - FIRST} steps in ${seconds.toFixed(0)} s on ${backend}, ${trainer.threads} thread(s), ${trainer.restores} restore(s)`,
    );
    note(
      `tensors: ${early.tensors.numTensors} → ${late.tensors.numTensors}, ${early.tensors.numBytes} → ${late.tensors.numBytes} bytes (main thread)`,
    );
    note(`worker replicas: ${JSON.stringify(early.workers)} → ${JSON.stringify(late.workers)} (tensors, bytes)`);
    note(`RSS every 1000 steps: ${rssAlong.join(', ')} MB`);
    note(
      `RSS ${early.rss.toFixed(1)} → ${late.rss.toFixed(1)} MB, heap ${early.heap.toFixed(1)} → ${late.heap.toFixed(1)} MB`,
    );
    const problems: string[] = [];
    if (late.tensors.numTensors !== early.tensors.numTensors || late.tensors.numBytes !== early.tensors.numBytes)
      problems.push('tensors leaked');
    if (JSON.stringify(late.workers) !== JSON.stringify(early.workers))
      problems.push('a worker replica leaked tensors');
    if (late.rss > early.rss + RSS_SLACK_MB) problems.push(`RSS grew more than ${RSS_SLACK_MB} MB`);
    if (late.heap > early.heap + HEAP_SLACK_MB) problems.push(`heap grew more than ${HEAP_SLACK_MB} MB`);
    if (trainer.restores !== 1) problems.push(`expected 1 restore, saw ${trainer.restores}`);
    benchLine('train-memory', late.rss, `MB@${STEPS}steps`, early.rss, `MB@${FIRST}steps`, early.rss / late.rss);
    if (problems.length) throw new Error(`train-memory: ${problems.join('; ')}`);
  } finally {
    trainer.dispose();
    disposeWeights(weights);
  }
}
