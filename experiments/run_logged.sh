#!/bin/sh
# Run one `advwsl reproduce` command into its run directory and write OUT/log.txt beside it: the command,
# the machine, its output and its wall and CPU time (GNU time -v), as every committed result carries.
#
#   experiments/run_logged.sh OUT reproduce A-V-1 --set n_samples=500 --workers 2
#   experiments/run_logged.sh --resume OUT [--workers 2]     # continue OUT after an interruption
#
# OUT must not exist yet (the run directory is created by the command, with --out OUT appended). While the
# command runs its log is OUT.log.txt; a resumed run appends to it (each start with its own command, git SHA
# and times), and the whole log moves to OUT/log.txt when the run completes.
set -eu
resume=
if [ "$1" = "--resume" ]; then resume=1; shift; fi
out=$1; shift
log="$out.log.txt"
if [ -z "$resume" ] && [ -e "$out" ]; then echo "$out exists; choose a new folder (or --resume it)" >&2; exit 2; fi
if [ -n "$resume" ] && [ ! -f "$out/INCOMPLETE" ]; then echo "$out holds no interrupted run" >&2; exit 2; fi
if [ -n "$resume" ]; then set -- reproduce --resume "$out" "$@"; what="advwsl $*"; else what="advwsl $* --out $out"; fi
{
  [ -n "$resume" ] && echo && echo "---- resumed ----"
  echo "command: $what"
  echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc --all) CPU cores ($(uname -m)), OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo
} >> "$log"
status=0
if [ -n "$resume" ]; then
  /usr/bin/time -v advwsl "$@" --no-progress >> "$log" 2>&1 || status=$?
else
  /usr/bin/time -v advwsl "$@" --no-progress --out "$out" >> "$log" 2>&1 || status=$?
fi
echo "finished: $(date -u +%Y-%m-%dT%H:%M:%SZ), exit status $status" >> "$log"
if [ -d "$out" ] && [ ! -e "$out/INCOMPLETE" ]; then mv "$log" "$out/log.txt"; fi
exit $status
