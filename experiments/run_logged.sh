#!/bin/sh
# Run one `advwsl reproduce` command into its run directory and write OUT/log.txt beside it: the command,
# the machine, its output and its wall and CPU time (GNU time -v), as every committed result carries.
#
#   experiments/run_logged.sh OUT reproduce A-V-1 --set n_samples=500 --workers 2
#
# OUT must not exist yet (the run directory is created by the command, with --out OUT appended).
set -eu
out=$1; shift
if [ -e "$out" ]; then echo "$out exists; choose a new folder" >&2; exit 2; fi
log=$(mktemp)
{
  echo "command: advwsl $* --out $out"
  echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc --all) CPU cores ($(uname -m)), OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo
} > "$log"
status=0
/usr/bin/time -v advwsl "$@" --no-progress --out "$out" >> "$log" 2>&1 || status=$?
echo "finished: $(date -u +%Y-%m-%dT%H:%M:%SZ), exit status $status" >> "$log"
if [ -d "$out" ]; then mv "$log" "$out/log.txt"; else mv "$log" "$out.log.txt"; fi
exit $status
