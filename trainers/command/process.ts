// Runs an external command under supervisor.sh: in its own process group, its output as lines,
// stopped by SIGINT → SIGTERM → SIGKILL with grace periods, and never outliving the worker.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

export interface ExitStatus {
  code: number; // the command's exit code; 128 + n when a signal ended it
  requested: boolean; // we asked it to stop (deadline, step reached, cancellation)
}

export interface SupervisedProcess {
  readonly pgid: number;
  readonly exited: Promise<ExitStatus>;
  /** Asks it to stop: SIGINT, SIGTERM after sigintGraceMs, SIGKILL after sigtermGraceMs more. Resolves on exit. */
  stop(grace: { sigintGraceMs: number; sigtermGraceMs: number }): Promise<ExitStatus>;
  /** SIGKILL to the whole group, now. */
  kill(): void;
}

export interface RunOptions {
  argv: string[];
  cwd?: string;
  env?: Record<string, string>;
  onLine: (line: string, stream: 'stdout' | 'stderr') => void;
  /** What the supervisor gives the group between SIGTERM and SIGKILL when the worker dies. */
  orphanGraceMs?: number;
}

const SUPERVISOR = path.join(__dirname, 'supervisor.sh');

export function runSupervised(opts: RunOptions): SupervisedProcess {
  const graceSeconds = String((opts.orphanGraceMs ?? 5000) / 1000);
  const child = spawn('/bin/sh', [SUPERVISOR, graceSeconds, '--', ...opts.argv], {
    cwd: opts.cwd,
    env: { ...process.env, PYTHONUNBUFFERED: '1', ...opts.env },
    detached: true, // setsid: the supervisor leads a new process group, and the trainer joins it
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const pgid = child.pid!;
  let requested = false;
  const signalGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pgid, sig);
    } catch {
      // ESRCH: the group is gone
    }
  };
  readline.createInterface({ input: child.stdout! }).on('line', (l) => opts.onLine(l, 'stdout'));
  readline.createInterface({ input: child.stderr! }).on('line', (l) => opts.onLine(l, 'stderr'));
  const exited = new Promise<ExitStatus>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      signalGroup('SIGKILL'); // anything the trainer started and left behind
      resolve({ code: code ?? 128 + (signal ? require('node:os').constants.signals[signal] : 0), requested });
    });
  });
  return {
    pgid,
    exited,
    async stop({ sigintGraceMs, sigtermGraceMs }) {
      requested = true;
      const timers: NodeJS.Timeout[] = [];
      signalGroup('SIGINT');
      timers.push(setTimeout(() => signalGroup('SIGTERM'), sigintGraceMs));
      timers.push(setTimeout(() => signalGroup('SIGKILL'), sigintGraceMs + sigtermGraceMs));
      try {
        return await exited;
      } finally {
        timers.forEach(clearTimeout);
      }
    },
    kill() {
      requested = true;
      signalGroup('SIGKILL');
    },
  };
}
