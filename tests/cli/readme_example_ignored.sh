#!/bin/sh
# The binary the README's C example builds (its "gcc client/examples/... -o
# NAME" line) is ignored by git, so trying the example leaves the checkout
# clean. Skipped (77) outside a git checkout.
set -u
src=$1
if ! command -v git >/dev/null 2>&1 ||
  ! git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  echo "not a git checkout: skipped"
  exit 77
fi
outs=$(sed -n 's|^gcc client/examples/.* -o \([^ ]*\).*|\1|p' "$src/README.md")
if [ -z "$outs" ]; then
  echo "README.md has no 'gcc client/examples/... -o NAME' line"
  exit 1
fi
for o in $outs; do
  if ! git -C "$src" check-ignore -q "$o"; then
    echo "$o (built by the README's C example) is not in .gitignore"
    exit 1
  fi
done
echo "ignored: $outs"
