// The small process between the gpu worker and an external trainer, so a trainer never outlives
// its worker. The worker starts it detached (it leads a new process group); it starts the trainer
// in that group, sharing the worker's stdout/stderr pipes. Its stdin is a pipe from the worker:
// when that closes, the worker is gone (even by SIGKILL, which no handler sees), and it ends the
// whole group: SIGTERM, then SIGKILL after the grace period. A process group alone does not die
// with its parent. It ignores the signals the worker sends the group (they are for the trainer)
// and exits with the trainer's status (128 + signal number when killed).
// Plain JavaScript: it must start in milliseconds, without a TypeScript loader.
//   node supervisor.js <grace ms> -- <command> [args…]
'use strict';
/* global process, require, setTimeout, setInterval */
/* eslint-disable @typescript-eslint/no-require-imports -- plain CommonJS, started by node without a loader */
const { spawn } = require('node:child_process');
const os = require('node:os');

const graceMs = Number(process.argv[2]);
const argv = process.argv.slice(4);
if (!(graceMs >= 0) || process.argv[3] !== '--' || argv.length === 0) {
  process.stderr.write('usage: supervisor.js <grace ms> -- <command> [args…]\n');
  process.exit(2);
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => {});

const group = -process.pid;
let orphaned = false;
const signalGroup = (sig) => {
  try {
    process.kill(group, sig);
  } catch {
    // ESRCH: nobody left
  }
};

const trainer = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] });
trainer.on('error', (err) => {
  process.stderr.write(`supervisor: cannot start ${argv[0]}: ${err.message}\n`);
  process.exit(127);
});
trainer.on('exit', (code, signal) => {
  if (orphaned) signalGroup('SIGKILL'); // whatever the trainer left behind, and this process
  process.exit(code ?? 128 + (os.constants.signals[signal] ?? 0));
});

const workerGone = () => {
  if (orphaned) return;
  orphaned = true;
  signalGroup('SIGTERM');
  setTimeout(() => signalGroup('SIGKILL'), graceMs).unref();
};
process.stdin.on('end', workerGone);
process.stdin.on('close', workerGone);
process.stdin.on('error', workerGone);
process.stdin.resume();
// Belt and braces: reparented means the worker died even if the pipe somehow stayed open.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) workerGone();
}, 1000).unref();
