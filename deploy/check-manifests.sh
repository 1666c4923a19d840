#!/usr/bin/env bash
# deploy/check-manifests.sh [PATH-TO-ternd]
#
# Static checks of everything in deploy/, without a cluster or a container
# engine (ctest runs it: the entry deploy_manifests). Each check runs when
# its tool is installed and says "skipped" otherwise (Debian packages:
# python3-yaml and systemd, both installed by scripts/install-deps.sh;
# yamllint, shellcheck, kubernetes-client for kubectl); with
# TERN_MANIFESTS_STRICT=1 (ctest sets it) a missing python3-yaml or
# systemd-analyze is a failure. No schema validator such as kubeconform is
# packaged in Debian 12, and kubectl's own validation needs a cluster.
#  - every YAML file parses, and each Kubernetes object has apiVersion, kind
#    and metadata.name; the compose file has services;
#  - Kubernetes: every file of the kustomization exists; the Deployment has
#    distinct startup, readiness and liveness probes (readiness on
#    /healthz, liveness not: /healthz is 503 while draining), a
#    PodDisruptionBudget selects its pods, and the credentials Secret is
#    mounted and named by TERN_CONFIG_FILE; every ConfigMap key is one of
#    ternd's TERN_* variables; the Secret's ternd.conf passes
#    `ternd --check-config`;
#  - the probes ask pages open without the monitoring token (/healthz,
#    /metrics);
#  - compose: the clients wait for the broker's health (service_healthy),
#    and the host ports are the documented variables; the broker's token
#    comes from the environment and must be set (${TERN_AUTH_TOKEN:?...}),
#    and the clients send it;
#  - secure by default: nothing ships TERN_ALLOW_ANONYMOUS; with the
#    image's TERN_HOST the Kubernetes pod as shipped (ConfigMap and the
#    Secret's file) and compose's broker without its token are refused by
#    `ternd --check-config` for want of authentication, and accepted with a
#    token;
#  - yamllint (relaxed: line length is not an error);
#  - kubectl kustomize renders deploy/k8s offline;
#  - systemd-analyze verify on ternd.service, with ExecStart pointed at a
#    real ternd (the unit names /usr/local/bin/ternd, which verify requires
#    to exist); the unit is Type=notify with ExecReload and the config
#    file, deploy/ternd.conf (what it is installed from) passes
#    `ternd --check-config`, and `systemd-analyze security` rates it 2.0 or
#    better (0 = most confined, 10 = not at all; --threshold counts tenths);
#  - shellcheck on the scripts.
set -euo pipefail
STRICT=${TERN_MANIFESTS_STRICT:-0}

DEPLOY=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$DEPLOY")
TERND=$(realpath -m "${1:-$REPO/build/bin/ternd}")
failed=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

ok() { echo "ok:      $*"; }
skip() { echo "skipped: $*"; }
# A skip that strict mode counts as a failure.
need() {
  if [ "$STRICT" = 1 ]; then
    bad "$* (TERN_MANIFESTS_STRICT=1)"
  else
    skip "$*"
  fi
}
bad() {
  echo "FAILED:  $*"
  failed=1
}

mapfile -t yamls < <(find "$DEPLOY" -name '*.yaml' -o -name '*.yml' | sort)

# Debian's interpreter: python3-yaml is installed for it (a python3 earlier
# on PATH may be another one, without it).
py=/usr/bin/python3
if [ -x "$py" ] && "$py" -c 'import yaml' 2>/dev/null; then
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
  need "YAML parse (no /usr/bin/python3 with PyYAML: apt-get install python3-yaml)"
fi

# ---- what the manifests must say -------------------------------------------
if [ -x "$TERND" ]; then
  # ternd's own list of options, as environment variable names.
  "$TERND" --check-config /dev/null |
    awk -F ' = ' '/^[a-z_]+ = / { print "TERN_" toupper($1) }' >"$WORK/vars"
  echo TERN_CONFIG_FILE >>"$WORK/vars"
else
  : >"$WORK/vars"
fi
if [ -x "$py" ] && "$py" -c 'import yaml' 2>/dev/null; then
  if "$py" - "$DEPLOY" "$WORK" <<'EOF'; then
import os, sys, yaml
deploy, work = sys.argv[1], sys.argv[2]
errors = []
def err(msg):
    errors.append(msg)
    print("  " + msg)

k8s = os.path.join(deploy, "k8s")
with open(os.path.join(k8s, "kustomization.yaml")) as f:
    kust = yaml.safe_load(f)
objs = []
for res in kust["resources"]:
    path = os.path.join(k8s, res)
    if not os.path.exists(path):
        err(f"kustomization lists {res}, which does not exist")
        continue
    with open(path) as f:
        objs += [d for d in yaml.safe_load_all(f) if d]
listed = set(kust["resources"])
for name in os.listdir(k8s):
    if name.endswith(".yaml") and name != "kustomization.yaml" and name not in listed:
        err(f"k8s/{name} is not in kustomization.yaml")
by_kind = {}
for o in objs:
    by_kind.setdefault(o["kind"], []).append(o)

def one(kind):
    found = by_kind.get(kind, [])
    if len(found) != 1:
        err(f"expected one {kind}, found {len(found)}")
        return None
    return found[0]

dep, pdb, secret, cm = (one(k) for k in
                        ("Deployment", "PodDisruptionBudget", "Secret", "ConfigMap"))
if dep:
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    c = pod["containers"][0]
    probes = {k: c.get(k) for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    for k, v in probes.items():
        if not v:
            err(f"Deployment: no {k}")
    if all(probes.values()):
        vals = [yaml.safe_dump(v, sort_keys=True) for v in probes.values()]
        if len(set(vals)) != 3:
            err("Deployment: the startup, readiness and liveness probes are not distinct")
        path = lambda p: (p.get("httpGet") or {}).get("path")
        for k, v in probes.items():
            if path(v) not in ("/healthz", "/metrics"):
                err(f"Deployment: {k} asks {path(v)}, which needs the monitoring token (open: /healthz, /metrics)")
        if path(probes["readinessProbe"]) != "/healthz":
            err("Deployment: readiness must be /healthz (503 while draining)")
        if path(probes["livenessProbe"]) == "/healthz":
            err("Deployment: liveness on /healthz would restart a draining broker")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    if secret:
        sname = secret["metadata"]["name"]
        vol = next((n for n, v in vols.items()
                    if (v.get("secret") or {}).get("secretName") == sname), None)
        if vol is None or vol not in mounts:
            err(f"Deployment: the Secret {sname} is not mounted")
        else:
            mpath = mounts[vol]["mountPath"].rstrip("/")
            cfile = env.get("TERN_CONFIG_FILE", "")
            keys = (secret.get("stringData") or {}).keys() | (secret.get("data") or {}).keys()
            if os.path.dirname(cfile) != mpath or os.path.basename(cfile) not in keys:
                err(f"Deployment: TERN_CONFIG_FILE={cfile!r} is not a key of the Secret mounted at {mpath}")
            if not mounts[vol].get("readOnly"):
                err("Deployment: the Secret's mount is not readOnly")
        conf = (secret.get("stringData") or {}).get("ternd.conf")
        if conf is None:
            err("Secret: no stringData ternd.conf")
        else:
            with open(os.path.join(work, "secret-ternd.conf"), "w") as f:
                f.write(conf)
    if pdb:
        sel = pdb["spec"]["selector"].get("matchLabels", {})
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            err("PodDisruptionBudget: its selector does not match the Deployment's pods")
        if "minAvailable" not in pdb["spec"] and "maxUnavailable" not in pdb["spec"]:
            err("PodDisruptionBudget: neither minAvailable nor maxUnavailable")
if cm:
    with open(os.path.join(work, "vars")) as f:
        known = set(f.read().split())
    if known:
        for k in cm.get("data", {}):
            if k not in known:
                err(f"ConfigMap: {k} is not a ternd variable")
    with open(os.path.join(work, "cm.env"), "w") as f:
        for k, v in cm.get("data", {}).items():
            f.write(f"{k}={v}\n")
for name in ("Dockerfile", "ternd.env", "docker-compose.yml", "k8s/configmap.yaml"):
    with open(os.path.join(deploy, name)) as f:
        if "TERN_ALLOW_ANONYMOUS" in "".join(l for l in f if not l.lstrip().startswith("#")):
            err(f"{name} sets TERN_ALLOW_ANONYMOUS: anonymous clients must not be a shipped default")

with open(os.path.join(deploy, "docker-compose.yml")) as f:
    compose = yaml.safe_load(f)
svcs = compose["services"]
for name, svc in svcs.items():
    env = svc.get("environment") or {}
    if name == "ternd":
        ports = " ".join(svc.get("ports", []))
        for var in ("TERN_HOST_PORT", "TERN_HTTP_HOST_PORT"):
            if "${" + var not in ports:
                err(f"compose: ternd's ports do not use {var}")
        if not str(env.get("TERN_AUTH_TOKEN", "")).startswith("${TERN_AUTH_TOKEN:?"):
            err("compose: ternd's TERN_AUTH_TOKEN must come from the environment, required (${TERN_AUTH_TOKEN:?...})")
        continue
    if "${TERN_AUTH_TOKEN" not in str(env.get("TERN_TOKEN", "")):
        err(f"compose: {name} does not send the broker's token (TERN_TOKEN)")
    dep_on = svc.get("depends_on", {})
    cond = dep_on.get("ternd", {}).get("condition") if isinstance(dep_on, dict) else None
    if cond != "service_healthy":
        err(f"compose: {name} does not wait for ternd to be healthy (condition: service_healthy)")
sys.exit(1 if errors else 0)
EOF
    ok "Kubernetes probes, PodDisruptionBudget, Secret; compose depends_on and ports"
  else
    bad "manifest contents"
  fi
  if [ -x "$TERND" ] && [ -f "$WORK/secret-ternd.conf" ]; then
    if "$TERND" --check-config "$WORK/secret-ternd.conf" >"$WORK/check.out" 2>&1; then
      ok "ternd --check-config on the Secret's ternd.conf"
    else
      cat "$WORK/check.out"
      bad "ternd --check-config on the Secret's ternd.conf"
    fi
  fi
  # Secure by default, with the image's own TERN_HOST: refused without
  # authentication, accepted with a token.
  image_host=$(sed -n 's/^ENV TERN_HOST=//p' "$DEPLOY/Dockerfile")
  # ternd as the container sees it: the image's host, variables from FILE
  # (KEY=VALUE lines, comments skipped), then $1 as the config file.
  as_shipped() {
    local vars=$1 conf=$2
    shift 2
    mapfile -t kv < <(grep -E '^TERN_[A-Z_]+=' "$vars")
    env -i PATH="$PATH" TERN_HOST="$image_host" "${kv[@]}" "$@" \
      "$TERND" --check-config "$conf" >"$WORK/secure.out" 2>&1
  }
  secure_default() {
    local what=$1 vars=$2 conf=$3
    if [ -z "$image_host" ] || [ "$image_host" = 127.0.0.1 ]; then
      bad "$what: no TERN_HOST in the Dockerfile to check against"
    elif as_shipped "$vars" "$conf"; then
      bad "$what: accepted without authentication on $image_host"
    elif ! grep -q "refusing to listen on $image_host without authentication" "$WORK/secure.out"; then
      cat "$WORK/secure.out"
      bad "$what: refused, but not for want of authentication"
    elif ! as_shipped "$vars" "$conf" TERN_AUTH_TOKEN=check-manifests; then
      cat "$WORK/secure.out"
      bad "$what: refused even with TERN_AUTH_TOKEN"
    else
      ok "$what on $image_host: refused without authentication, accepted with a token"
    fi
  }
  if [ -x "$TERND" ] && [ -f "$WORK/secret-ternd.conf" ] && [ -f "$WORK/cm.env" ]; then
    secure_default "Kubernetes pod as shipped" "$WORK/cm.env" "$WORK/secret-ternd.conf"
    secure_default "compose's broker without TERN_AUTH_TOKEN" "$DEPLOY/ternd.env" /dev/null
  fi
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

unit=$DEPLOY/systemd/ternd.service
missing=""
for want in '^Type=notify$' '^ExecReload=/bin/kill -HUP \$MAINPID$' \
  '^ExecStart=/usr/local/bin/ternd --config /etc/tern/ternd.conf$' '^User=tern$'; do
  grep -Eq "$want" "$unit" || missing="$missing '$want'"
done
if [ -z "$missing" ]; then
  ok "ternd.service: Type=notify, ExecReload, the config file, its own user"
else
  bad "ternd.service lacks:$missing"
fi
if [ -x "$TERND" ]; then
  if "$TERND" --check-config "$DEPLOY/ternd.conf" >"$WORK/check.out" 2>&1; then
    ok "ternd --check-config deploy/ternd.conf (the unit's /etc/tern/ternd.conf)"
  else
    cat "$WORK/check.out"
    bad "ternd --check-config deploy/ternd.conf"
  fi
fi

if command -v systemd-analyze >/dev/null; then
  if [ -x "$TERND" ]; then
    sed "s|/usr/local/bin/ternd|$TERND|" "$unit" >"$WORK/ternd.service"
    # verify prints warnings without failing: any output is a finding.
    # --man=no: the ternd(8) of Documentation= is installed by cmake
    # --install, not here.
    if systemd-analyze verify --man=no "$WORK/ternd.service" >"$WORK/verify.out" 2>&1 &&
       [ ! -s "$WORK/verify.out" ]; then
      ok "systemd-analyze verify ternd.service"
    else
      cat "$WORK/verify.out"
      bad "systemd-analyze verify"
    fi
    if systemd-analyze security --offline=yes --threshold=20 "$WORK/ternd.service" \
      >"$WORK/security.out" 2>&1; then
      ok "systemd-analyze security: $(grep -o 'exposure level for [^:]*: [0-9.]* [A-Z]*' "$WORK/security.out")"
    else
      tail -40 "$WORK/security.out"
      bad "systemd-analyze security (exposure above 2.0)"
    fi
  else
    need "systemd-analyze verify (no ternd at $TERND: build it or pass its path)"
  fi
else
  need "systemd-analyze (apt-get install systemd)"
fi

# ---- the cluster: deploy/k8s/cluster ---------------------------------------
# A 3-replica StatefulSet whose serviceName is a headless Service (routes,
# not-ready addresses published) selecting its pods on the route port, a
# client Service selecting them, a PodDisruptionBudget maxUnavailable: 1, a
# preStop drain, the route port and seeds set, the advertised addresses
# from the pod's IP, and the ConfigMap's keys ternd's variables.
if [ -x "$py" ] && "$py" -c 'import yaml' 2>/dev/null; then
  if "$py" - "$DEPLOY" "$WORK" <<'EOF'; then
import os, sys, yaml
deploy, work = sys.argv[1], sys.argv[2]
d = os.path.join(deploy, "k8s", "cluster")
errors = []
def err(m):
    errors.append(m)
    print("  " + m)
with open(os.path.join(d, "kustomization.yaml")) as f:
    kust = yaml.safe_load(f)
objs = []
for res in kust["resources"]:
    p = os.path.join(d, res)
    if not os.path.exists(p):
        err(f"cluster kustomization lists {res}, which does not exist")
        continue
    with open(p) as f:
        objs += [o for o in yaml.safe_load_all(f) if o]
for name in os.listdir(d):
    if name.endswith(".yaml") and name != "kustomization.yaml" and name not in kust["resources"]:
        err(f"k8s/cluster/{name} is not in its kustomization.yaml")
kinds = {}
for o in objs:
    kinds.setdefault(o["kind"], []).append(o)
sts = (kinds.get("StatefulSet") or [None])[0]
if sts is None:
    err("no StatefulSet")
    sys.exit(1)
spec = sts["spec"]
labels = spec["template"]["metadata"]["labels"]
sel = lambda o: o["spec"].get("selector", {})
matches = lambda s: bool(s) and all(labels.get(k) == v for k, v in s.items())
if spec.get("replicas") != 3:
    err("StatefulSet: replicas is not 3")
svcs = {s["metadata"]["name"]: s for s in kinds.get("Service", [])}
head = svcs.get(spec.get("serviceName"))
c = spec["template"]["spec"]["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
if head is None:
    err("StatefulSet: serviceName is not a Service of the kustomization")
else:
    if head["spec"].get("clusterIP") != "None":
        err("routes Service: not headless (clusterIP: None)")
    if not head["spec"].get("publishNotReadyAddresses"):
        err("routes Service: publishNotReadyAddresses is not set")
    if not matches(sel(head)):
        err("routes Service: its selector does not match the pods")
    tports = [p.get("targetPort") for p in head["spec"]["ports"]]
    if "routes" not in tports or "routes" not in ports:
        err("routes Service: no targetPort 'routes' on a container port 'routes'")
clients = [s for s in svcs.values() if s is not head and matches(sel(s))
           and s["spec"].get("clusterIP") != "None"]
if not clients or not any(p.get("targetPort") == "tern" for p in clients[0]["spec"]["ports"]):
    err("no client Service selecting the pods on port 'tern'")
pdbs = kinds.get("PodDisruptionBudget", [])
if len(pdbs) != 1 or pdbs[0]["spec"].get("maxUnavailable") != 1 \
        or not matches(pdbs[0]["spec"]["selector"].get("matchLabels")):
    err("PodDisruptionBudget: not one with maxUnavailable: 1 selecting the pods")
if not ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec"):
    err("StatefulSet: no preStop drain")
if (c.get("readinessProbe") or {}).get("httpGet", {}).get("path") != "/healthz":
    err("StatefulSet: readiness is not /healthz")
env = {e["name"]: e for e in c.get("env", [])}
cm = {}
for m in kinds.get("ConfigMap", []):
    cm.update(m.get("data", {}))
for k in ("TERN_CLUSTER_PORT", "TERN_ROUTES"):
    if k not in cm and k not in env:
        err(f"StatefulSet: {k} is not set")
if str(cm.get("TERN_CLUSTER_PORT")) != str(ports.get("routes")):
    err("TERN_CLUSTER_PORT is not the container's 'routes' port")
for k in ("TERN_CLUSTER_ADVERTISE", "TERN_CLIENT_ADVERTISE"):
    if "$(POD_IP)" not in (env.get(k) or {}).get("value", ""):
        err(f"StatefulSet: {k} is not made from the pod's IP")
if "secretKeyRef" not in ((env.get("TERN_CLUSTER_TOKEN") or {}).get("valueFrom") or {}):
    err("StatefulSet: TERN_CLUSTER_TOKEN does not come from a Secret")
with open(os.path.join(work, "vars")) as f:
    known = set(f.read().split())
if known:
    for k in list(cm) + [e for e in env if e.startswith("TERN_")]:
        if k not in known:
            err(f"cluster: {k} is not a ternd variable")
sys.exit(1 if errors else 0)
EOF
    ok "k8s/cluster: 3-replica StatefulSet, headless routes Service, client Service, PDB maxUnavailable 1, preStop drain"
  else
    bad "k8s/cluster"
  fi
else
  need "k8s/cluster checks (no /usr/bin/python3 with PyYAML)"
fi

if command -v shellcheck >/dev/null; then
  if shellcheck -S warning "$DEPLOY"/*.sh "$REPO/tests/install/install_test.sh" \
    "$REPO/tests/deploy/"*.sh; then
    ok "shellcheck"
  else
    bad "shellcheck"
  fi
else
  skip "shellcheck"
fi

exit "$failed"
