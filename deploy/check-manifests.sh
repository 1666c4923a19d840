#!/usr/bin/env bash
# deploy/check-manifests.sh [PATH-TO-ternd]
#
# Static checks of everything in deploy/, without a cluster or a container
# engine. Each check runs when its tool is installed and says "skipped"
# otherwise (Debian packages: python3-yaml, yamllint, shellcheck, systemd,
# kubernetes-client for kubectl). No schema validator such as kubeconform
# is packaged in Debian 12, and kubectl's own validation needs a cluster.
#  - every YAML file parses, and each Kubernetes object has apiVersion, kind
#    and metadata.name; the compose file has services;
#  - yamllint (relaxed: line length is not an error);
#  - kubectl kustomize renders deploy/k8s offline;
#  - systemd-analyze verify on ternd.service, with ExecStart pointed at a
#    real ternd (the unit names /usr/local/bin/ternd, which verify requires
#    to exist);
#  - shellcheck on the scripts.
set -euo pipefail

DEPLOY=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$DEPLOY")
TERND=$(realpath -m "${1:-$REPO/build/bin/ternd}")
failed=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

ok() { echo "ok:      $*"; }
skip() { echo "skipped: $*"; }
bad() {
  echo "FAILED:  $*"
  failed=1
}

mapfile -t yamls < <(find "$DEPLOY" -name '*.yaml' -o -name '*.yml' | sort)

# Any python3 that has PyYAML (Debian's python3-yaml is for /usr/bin/python3).
py=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import yaml' 2>/dev/null; then
    py=$cand
    break
  fi
done
if [ -n "$py" ]; then
  if "$py" - "${yamls[@]}" <<'EOF'; then
import sys, yaml
errors = 0
for path in sys.argv[1:]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        if path.endswith("docker-compose.yml"):
            ok = isinstance(d.get("services"), dict) and d["services"]
            what = "services"
        elif "/k8s/" in path:
            if d.get("kind") == "Kustomization":
                ok = "apiVersion" in d and d.get("resources")
            else:
                ok = all(k in d for k in ("apiVersion", "kind", "metadata")) \
                     and d["metadata"].get("name")
            what = "apiVersion/kind/metadata.name"
        else:
            ok, what = True, ""
        if not ok:
            print(f"{path}: missing {what}")
            errors += 1
    print(f"  {path}: {len(docs)} document(s)")
sys.exit(1 if errors else 0)
EOF
    ok "YAML parses (${#yamls[@]} files)"
  else
    bad "YAML parse"
  fi
else
  skip "YAML parse (no python3 with PyYAML: apt-get install python3-yaml)"
fi

if command -v yamllint >/dev/null; then
  if yamllint -d '{extends: relaxed, rules: {line-length: disable}}' "${yamls[@]}"; then
    ok "yamllint"
  else
    bad "yamllint"
  fi
else
  skip "yamllint"
fi

if command -v kubectl >/dev/null; then
  if kubectl kustomize "$DEPLOY/k8s" >"$WORK/rendered.yaml" 2>"$WORK/kustomize.err"; then
    ok "kubectl kustomize deploy/k8s ($(grep -c '^kind:' "$WORK/rendered.yaml") objects)"
  else
    cat "$WORK/kustomize.err"
    bad "kubectl kustomize"
  fi
else
  skip "kubectl kustomize (kubectl not installed)"
fi

if command -v systemd-analyze >/dev/null; then
  if [ -x "$TERND" ]; then
    sed "s|/usr/local/bin/ternd|$TERND|" "$DEPLOY/systemd/ternd.service" \
      >"$WORK/ternd.service"
    # verify prints warnings without failing: any output is a finding.
    if systemd-analyze verify "$WORK/ternd.service" >"$WORK/verify.out" 2>&1 &&
       [ ! -s "$WORK/verify.out" ]; then
      ok "systemd-analyze verify ternd.service"
    else
      cat "$WORK/verify.out"
      bad "systemd-analyze verify"
    fi
  else
    skip "systemd-analyze verify (no ternd at $TERND: build it or pass its path)"
  fi
else
  skip "systemd-analyze (apt-get install systemd)"
fi

if command -v shellcheck >/dev/null; then
  if shellcheck -S warning "$DEPLOY"/*.sh "$REPO/tests/install/install_test.sh"; then
    ok "shellcheck"
  else
    bad "shellcheck"
  fi
else
  skip "shellcheck"
fi

exit "$failed"
