// Picks the fastest TensorFlow.js backend this host can run: tfjs-node-gpu → tfjs-node → wasm.
// The two tfjs-node packages are optionalDependencies whose own install downloads libtensorflow
// from Google, which most hosts cannot reach, so npm drops them. scripts/setup-tfjs-node.sh builds
// tfjs-node instead against the TensorFlow C library inside PyPI's tensorflow-cpu wheel, into
// .tools/tfjs-node; we load it from node_modules if there, else from there. Without either: wasm.
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { terminateAllReplicas } from './parallel';
import { logger } from '../infra/log';
import { projectRoot } from '../infra/paths';

export const BACKEND_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

let active: Promise<string> | undefined;

/**
 * Initialises the backend once per process and returns the name of the one running.
 * MINERFLOW_BACKEND, if set, overrides `choice` (to run the tests or a bench on another backend).
 */
export function initBackend(
  choice: BackendChoice = 'auto',
  log: (msg: string) => void = (m) => logger.info(m),
): Promise<string> {
  active ??= pick(backendOverride() ?? choice, log);
  return active;
}

function backendOverride(): BackendChoice | undefined {
  const env = process.env.MINERFLOW_BACKEND;
  if (!env) return undefined;
  if (!(BACKEND_CHOICES as readonly string[]).includes(env))
    throw new Error(`MINERFLOW_BACKEND must be one of ${BACKEND_CHOICES.join(', ')} (got '${env}')`);
  return env as BackendChoice;
}

/** Where scripts/setup-tfjs-node.sh installs tfjs-node (MINERFLOW_TFJS_NODE_DIR overrides). */
export function tfjsNodeDir(): string {
  return process.env.MINERFLOW_TFJS_NODE_DIR ?? path.join(projectRoot(), '.tools', 'tfjs-node');
}

/** Resolves a tfjs-node package from node_modules, else from the setup's own install. */
function requireTfjsNode(pkg: string): unknown {
  let resolved: string;
  try {
    resolved = require.resolve(pkg);
  } catch {
    resolved = require.resolve(pkg, { paths: [tfjsNodeDir()] });
  }
  return require(resolved);
}

/**
 * Threads the running backend computes a kernel with: libtensorflow's intra-op pool
 * (TF_NUM_INTRAOP_THREADS, by default one per core it may run on), or 1 per wasm instance.
 */
export function backendThreads(): number {
  if (tf.getBackend() !== 'tensorflow') return 1;
  const env = Number(process.env.TF_NUM_INTRAOP_THREADS);
  return Number.isInteger(env) && env > 0 ? env : os.availableParallelism();
}

async function pick(choice: BackendChoice, log: (msg: string) => void): Promise<string> {
  const order: BackendChoice[] = choice === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm'] : [choice];
  const failures: string[] = [];
  for (const name of order) {
    try {
      await load(name);
      // Why the native CPU backend did not start (the GPU one is absent on CPU hosts by design).
      const whyNotNative = failures.find((f) => f.startsWith('tensorflow:'));
      log(
        `minerflow: TensorFlow.js backend = ${tf.getBackend()} (${describe(name)}), ${backendThreads()} thread(s) per kernel` +
          (whyNotNative ? `; not native because ${whyNotNative}` : ''),
      );
      return name;
    } catch (err) {
      failures.push(`${name}: ${firstLine(err)}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could start (${failures.join('; ')})`);
}

async function load(name: BackendChoice): Promise<void> {
  // libtensorflow's INFO lines (oneDNN, CPU features) on stderr say nothing a miner can act on.
  if (name.startsWith('tensorflow')) process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
  switch (name) {
    case 'tensorflow-gpu':
      requireTfjsNode('@tensorflow/tfjs-node-gpu'); // registers the 'tensorflow' backend bound to CUDA
      break;
    case 'tensorflow':
      requireTfjsNode('@tensorflow/tfjs-node');
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
    case 'tensorflow-gpu':
      return `libtensorflow ${tfVersion()} with CUDA`;
    case 'tensorflow':
      return `libtensorflow ${tfVersion()} on CPU`;
    case 'wasm':
      return 'WebAssembly fallback, single-threaded per instance (training adds one replica thread per core when it pays); bash scripts/setup-tfjs-node.sh builds the faster native backend';
    default:
      return 'pure JavaScript, slow';
  }
}

/** The TensorFlow C library's own version, as its binding reports it. */
function tfVersion(): string {
  const backend = tf.backend() as unknown as { binding?: { TF_Version?: string } };
  return backend.binding?.TF_Version ?? '(version unknown)';
}

function firstLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split('\n')[0];
}

/**
 * The backend crashed during a task (the wasm module aborted, e.g. out of its 4 GiB heap, or trapped).
 * The backend has been re-initialised, so the next task runs on a healthy one; this attempt fails for
 * good, since the same task would crash the same way.
 */
export class BackendAbortError extends Error {
  override name = 'BackendAbortError';
}

// What a dead Emscripten module throws: its abort(), and the wasm traps a corrupted heap produces.
// Replica threads report the same text inside "training replica N failed: …".
const ABORT_PATTERN =
  /\bAborted\(|memory access out of bounds|table index is out of bounds|RuntimeError: unreachable|null function or function signature mismatch/;

/** True when `err` means the TensorFlow.js backend itself is broken (not the input or the step). */
export function isBackendAbort(err: unknown): boolean {
  // WebAssembly.RuntimeError, by name: the project's TypeScript lib has no WebAssembly types.
  if (err instanceof Error && err.constructor?.name === 'RuntimeError') return true;
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return ABORT_PATTERN.test(text);
}

/**
 * Replaces a crashed backend with a fresh instance of the same kind, in this process: ends every
 * replica thread, drops all tensors and backend instances (tf.engine().reset(); the registered
 * factories stay), and sets the backend again, which for wasm instantiates a new module (its init()
 * builds a new WebAssembly instance each call). Returns the backend's name.
 */
export async function recoverBackend(log: (msg: string) => void = (m) => logger.warn(m)): Promise<string> {
  const name = tf.getBackend() ?? (await initBackend('auto', log));
  const threads = terminateAllReplicas();
  const engine = tf.engine() as unknown as { registry: Record<string, { dispose(): void }>; reset(): void };
  for (const backend of Object.values(engine.registry)) {
    // A dead module throws from its own dispose (it touches the broken heap): there is nothing to free.
    const dispose = backend.dispose.bind(backend);
    backend.dispose = () => {
      try {
        dispose();
      } catch {
        /* the instance is discarded either way */
      }
    };
  }
  engine.reset();
  if (!(await tf.setBackend(name)))
    throw new Error(
      `recovering the TensorFlow.js backend: tf.setBackend('${name}') returned false; restart the worker`,
    );
  await tf.ready();
  log(
    `minerflow: TensorFlow.js backend '${name}' re-initialised after a crash${threads ? ` (${threads} replica threads ended)` : ''}`,
  );
  return name;
}

/**
 * Runs a task; if the backend crashes in it, recovers the backend and fails with BackendAbortError
 * (non-retryable) so the next task starts healthy. Other errors pass through unchanged.
 */
export async function withBackendRecovery<T>(
  fn: () => Promise<T>,
  log: (msg: string) => void = (m) => logger.warn(m),
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!isBackendAbort(err)) throw err;
    await recoverBackend(log);
    throw new BackendAbortError(
      `the TensorFlow.js backend crashed (${firstLine(err)}), most likely out of memory: the model or batch is too large for it ` +
        `(the wasm backend holds at most 4 GiB per thread). Lower training.batchSize, model.seqLen, model.dModel or model.nLayer; ` +
        `the worker re-initialised its backend and takes new tasks`,
    );
  }
}
