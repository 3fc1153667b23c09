#!/usr/bin/env bash
# `scripts/quietly.sh LABEL CMD [ARG...]`: one set-up step of `make` (pip, Maven, apt) with its
# output appended to .recolake/setup.log instead of the terminal. Prints one line when it
# succeeds; when it fails, the log's last lines and the command's exit code.
set -uo pipefail
label=$1
shift
mkdir -p .recolake
log=.recolake/setup.log
started=$SECONDS
printf '== %s: %s\n' "$label" "$*" >>"$log"
if "$@" >>"$log" 2>&1; then
  echo "$label: done ($((SECONDS - started)) s)"
else
  rc=$?
  echo "$label: FAILED (exit $rc); the end of $log:" >&2
  tail -n 40 "$log" >&2
  exit "$rc"
fi
