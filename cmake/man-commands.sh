#!/bin/sh
# man-commands.sh TERN OUT: writes a help2man include file (OUT) holding a
# COMMANDS section with the --help text of every `tern` subcommand, set
# verbatim, so tern.1 documents them from the program itself.
set -eu
tern=$1
out=$2
{
  echo "[COMMANDS]"
  for cmd in pub sub req reply bench; do
    echo ".SS tern $cmd"
    echo ".nf"
    # Escape backslashes, and lines that troff would take as requests.
    "$tern" "$cmd" --help | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
    echo ".fi"
  done
  echo "[SEE ALSO]"
  echo ".BR ternd (8)"
} >"$out"
