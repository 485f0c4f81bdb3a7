// The `minerflow` command: the one entry point for people. This file holds the usage text and
// routes each command to its module; usage errors exit with code 2, failures with 1.
import { logger } from '../infra/log';
import { loadSettings, type Settings } from '../infra/settings';
import { UsageError } from './args';

export const USAGE = `minerflow — durable mining cycles for Bittensor training subnets

  minerflow demo                              one complete cycle on the embedded defaults
  minerflow dev                               Temporal dev server (Web UI :8233) + devnet + both workers
  minerflow devnet [--port N]                 the local devnet alone (subtensor JSON-RPC on ws://127.0.0.1:9944)
  minerflow hub serve [--dir DIR] [--port N]  a local Hugging Face Hub (HF_ENDPOINT for huggingface_hub)
  minerflow worker control|gpu [--pool P]    one worker (run them on different hosts; --pool: a Gradients pool)
  minerflow cycle start [--config FILE] [--id ID] [--wait]
                                              default id miningCycle-<netuid>-<wallet>.<hotkey>: one cycle per hotkey
  minerflow cycle status <workflowId>          phase, segments, decisions, deadline, loss curve
  minerflow status [--watch] [--interval S] [--subnet NAME] [--hotkey WALLET/HOTKEY]
                                              every running cycle: phase, step, best held-out, slack, last score
  minerflow cycle pause|resume|stop <workflowId>
  minerflow cycle extend <workflowId> --steps N | --seconds S
  minerflow schedule create --cron "<expr>" [--config FILE] [--id ID]
  minerflow schedule list | delete <id> | pause <id> | unpause <id>
  minerflow miner start [--config FILE] [--cycles N] [--id ID]   cycles back to back (minerLoop)
  minerflow miner status|stop <id>
  minerflow curate [--config FILE] [--corpus PATH] [--out DIR] [--report]   curation alone (reuses an unchanged result)
  minerflow lr-find [--config FILE] [--steps N] [--min-lr X] [--max-lr Y]   LR range test on the cycle's data and model
  minerflow wallet create [--wallet NAME] [--hotkey NAME]
  minerflow gradients serve --config FILE [--port N] [--host H]   the Gradients miner's intake (signed offers, training requests)
  minerflow gradients demo [--short]                              a local validator offers 12 jobs to a two-pool miner

Settings come from the environment (TEMPORAL_ADDRESS, MINERFLOW_DATA_DIR, …): see README.md.
Logs (JSON lines, MINERFLOW_LOG_LEVEL) go to stderr; command output to stdout.`;

type Command = (settings: () => Settings, args: string[]) => Promise<void>;

// Loaded on use: a command pays only for its own imports (workers and TensorFlow.js are heavy).
// require(), not import(): bin/minerflow.js runs this file through tsx's CommonJS hook only.
const COMMANDS: Record<string, () => Command> = {
  demo: () => (require('./local') as typeof import('./local')).demo,
  dev: () => (require('./local') as typeof import('./local')).dev,
  devnet: () => (require('./local') as typeof import('./local')).devnetCommand,
  worker: () => (require('./local') as typeof import('./local')).worker,
  hub: () => (require('./hub') as typeof import('./hub')).hubCommand,
  cycle: () => (require('./cycle') as typeof import('./cycle')).cycleCommand,
  status: () => (require('./status') as typeof import('./status')).statusCommand,
  schedule: () => (require('./schedule') as typeof import('./schedule')).scheduleCommand,
  miner: () => (require('./miner') as typeof import('./miner')).minerCommand,
  curate: () => (require('./data') as typeof import('./data')).curateCommand,
  'lr-find': () => (require('./data') as typeof import('./data')).lrFindCommand,
  wallet: () => (require('./data') as typeof import('./data')).walletCommand,
  gradients: () => (require('./gradients') as typeof import('./gradients')).gradientsCommand,
};

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    console.log(USAGE);
    return;
  }
  const load = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!load)
    throw new UsageError(
      cmd.startsWith('-') ? `unknown flag '${cmd}' (flags come after the command)` : `unknown command '${cmd}'`,
    );
  // Settings are read only once the command line is known to be right, so usage errors need no environment.
  let settings: Settings | undefined;
  const run = load();
  return run(() => (settings ??= loadSettings()), rest);
}

/** Exit code for an error: 2 for what was typed (usage, config file), 1 for everything else. */
function report(err: unknown): number {
  if (err instanceof UsageError) {
    console.error(`minerflow: ${err.message}${err.showUsage ? `\n\n${USAGE}` : ''}`);
    return 2;
  }
  logger.debug({ err }, 'command failed');
  console.error(`minerflow: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
}

main(process.argv.slice(2)).catch((err: unknown) => process.exit(report(err)));
