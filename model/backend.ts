// Picks the fastest TensorFlow.js backend this host can run: tfjs-node-gpu → tfjs-node → wasm.
// The two tfjs-node packages are optionalDependencies: their install downloads libtensorflow,
// so on an offline or GPU-less host they are simply absent and we fall back to wasm.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';

export const BACKEND_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

let active: Promise<string> | undefined;

/** Initialises the backend once per process and returns the name of the one running. */
export function initBackend(choice: BackendChoice = 'auto', log: (msg: string) => void = console.log): Promise<string> {
  active ??= pick(choice, log);
  return active;
}

async function pick(choice: BackendChoice, log: (msg: string) => void): Promise<string> {
  const order: BackendChoice[] = choice === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm'] : [choice];
  const failures: string[] = [];
  for (const name of order) {
    try {
      await load(name);
      log(`minerflow: TensorFlow.js backend = ${tf.getBackend()} (${describe(name)})`);
      return name;
    } catch (err) {
      failures.push(`${name}: ${firstLine(err)}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could start (${failures.join('; ')})`);
}

async function load(name: BackendChoice): Promise<void> {
  switch (name) {
    case 'tensorflow-gpu':
      require('@tensorflow/tfjs-node-gpu'); // registers the 'tensorflow' backend bound to CUDA
      break;
    case 'tensorflow':
      require('@tensorflow/tfjs-node');
      break;
    case 'wasm':
      require('@tensorflow/tfjs-backend-wasm');
      break;
    case 'cpu':
      require('@tensorflow/tfjs-backend-cpu');
      break;
    default:
      throw new Error(`unknown backend '${name}'`);
  }
  const target = name === 'tensorflow-gpu' ? 'tensorflow' : name;
  if (!(await tf.setBackend(target))) throw new Error(`tf.setBackend('${target}') returned false`);
  await tf.ready();
}

function describe(name: BackendChoice): string {
  switch (name) {
    case 'tensorflow-gpu': return 'libtensorflow with CUDA';
    case 'tensorflow': return 'libtensorflow on CPU';
    case 'wasm': return 'WebAssembly fallback, one thread; install @tensorflow/tfjs-node(-gpu) for more speed';
    default: return 'pure JavaScript, slow';
  }
}

function firstLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split('\n')[0];
}
