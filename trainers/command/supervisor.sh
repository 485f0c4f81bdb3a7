#!/bin/sh
# The small process between the gpu worker and an external trainer, so a trainer never outlives its
# worker. The worker starts it detached (it leads a new process group) with a pipe on stdin; the
# trainer runs in that group, in the foreground, on the worker's stdout/stderr. When the pipe reaches
# EOF the worker is gone (even by SIGKILL, which no handler sees), and the watcher ends the whole
# group: SIGTERM, then SIGKILL after the grace period (a process group alone does not die with its
# parent). Exits with the trainer's status (128 + signal number when a signal ended it).
# POSIX sh, not node: a node start costs ~0.2 CPU s on a loaded 2-core host, paid per command.
#   sh supervisor.sh <grace seconds> -- <command> [args…]
if [ $# -lt 3 ] || [ "$2" != "--" ]; then
  echo 'usage: supervisor.sh <grace seconds> -- <command> [args…]' >&2
  exit 2
fi
grace=$1
shift 2
# The signals the worker sends the group are for the trainer. Trapped, not ignored: an ignored
# signal would be inherited as ignored by the trainer.
trap ':' INT TERM HUP
# The worker's pipe moves to fd 3: the watcher reads it (a background job's stdin is /dev/null).
exec 3<&0 </dev/null
(
  trap '' INT TERM HUP # its own SIGTERM to the group must not end it before the SIGKILL
  cat <&3 >/dev/null 2>&1
  kill -TERM 0 2>/dev/null
  sleep "$grace"
  kill -KILL 0 2>/dev/null
) &
"$@" 3<&-
