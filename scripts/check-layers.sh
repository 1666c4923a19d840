#!/bin/bash
# The broker's layering, checked from its #include lines (broker/README.md
# draws it). Each file's layer is the folder it lives in under broker/; a
# module is a .c file and its .h together. Fails when a module includes
# one of a higher layer (an upward include) or when includes close a
# cycle between modules (even within one layer), and when anything but
# delivery/interest.c writes the subject index (sublist_insert/remove).
#
#   scripts/check-layers.sh [--list] [--at-most UP CYCLED] [ROOT]
#
# --list prints every include edge with the layers it joins. --at-most
# tolerates up to UP upward edges and CYCLED modules in cycles (what is
# left to untangle) and fails only when either count rises. Exit 0 when
# the broker is layered (or no worse than --at-most), 1 when not, 2 on a
# usage error.
set -euo pipefail
list=0
max_up=0
max_cycled=0
while [ $# -gt 0 ]; do
  case $1 in
  --list) list=1; shift ;;
  --at-most) max_up=$2; max_cycled=$3; shift 3 ;;
  -*) echo "usage: $0 [--list] [--at-most UP CYCLED] [ROOT]" >&2; exit 2 ;;
  *) break ;;
  esac
done
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
[ -d "$root/broker" ] || { echo "check-layers: no broker/ under $root" >&2; exit 2; }
# Absolute, so every path below compares alike (a relative ROOT found no
# include at all and passed).
root=$(cd "$root" && pwd)
exec /usr/bin/python3 - "$root" "$list" "$max_up" "$max_cycled" <<'PY'
import os, re, sys

root, show = sys.argv[1], sys.argv[2] == "1"
max_up, max_cycled = int(sys.argv[3]), int(sys.argv[4])
broker = os.path.join(root, "broker")

# Bottom to top. A module may include modules of its own layer or below.
# The delivery core and the transport sit side by side: neither names the
# other.
LAYERS = {
    "base": 0,       # logging, lists, the memory limit: used by everyone
    "data": 1,       # subject index, hash table, bodies, buffers, queues
    "store": 2,      # stream logs on disk, state files: no connections
    "delivery": 3,   # interest, routing, pending accounting, policies
    "transport": 3,  # a connection's bytes in and out, timers, close
    "session": 4,    # the client protocol's frame handlers, logins
    "stream": 4,     # durable streams and consumers (beside the session)
    "cluster": 5,    # routes to other nodes: a session with its own frames
    "server": 6,     # listeners, workers, config, signals, HTTP, $SYS
}
files = []
for d, _, names in os.walk(broker):
    for n in names:
        if n.endswith((".c", ".h")):
            files.append(os.path.join(d, n))
files.sort()

def module(path):
    return os.path.splitext(os.path.relpath(path, broker))[0]

def layer(path):
    rel = os.path.relpath(path, broker).split(os.sep)
    if len(rel) > 1 and rel[0] in LAYERS:
        return rel[0]
    return None

bad = 0
for f in files:
    if layer(f) is None:
        print(f"check-layers: {os.path.relpath(f, root)} is in no layer "
              f"(folders: {', '.join(LAYERS)})")
        bad = 1

inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"')

def resolve(src, name):
    for d in [os.path.dirname(src), broker]:
        p = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(p) and p.startswith(broker + os.sep):
            return p
    return None  # tern_proto and system headers: below every layer

edges = {}  # (from module, to module) -> an example "file: include"
for f in files:
    with open(f, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = inc.match(line)
            if not m:
                continue
            t = resolve(f, m.group(1))
            if t is None or module(t) == module(f):
                continue
            edges.setdefault((module(f), module(t)),
                             (f, t, f"{os.path.relpath(f, broker)}: {m.group(1)}"))

up = []
for (a, b), (fa, fb, where) in sorted(edges.items()):
    la, lb = layer(fa), layer(fb)
    if show:
        print(f"  {a} ({la}) -> {b} ({lb})")
    if la and lb and LAYERS[la] < LAYERS[lb]:
        up.append(f"  up: {where}  ({la} -> {lb})")

# One interest API: only delivery/interest.c writes the subject index.
writers = re.compile(r"\bsublist_(insert|remove)\s*\(")
for f in files:
    rel = os.path.relpath(f, broker)
    if rel in ("delivery/interest.c", "data/sublist.c", "data/sublist.h"):
        continue
    with open(f, encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh, 1):
            if writers.search(line):
                print(f"check-layers: {rel}:{i} writes the subject index "
                      f"(only delivery/interest.c may)")
                bad = 1

# Cycles: strongly connected components of more than one module (Tarjan).
graph = {}
for a, b in edges:
    graph.setdefault(a, set()).add(b)
    graph.setdefault(b, set())
index, low, stack, on, sccs = {}, {}, [], set(), []
def strong(v):
    index[v] = low[v] = len(index)
    stack.append(v); on.add(v)
    for w in sorted(graph[v]):
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in index:
        strong(v)

for line in up:
    print(line)
for c in sccs:
    print(f"  cycle of {len(c)}: {' '.join(c)}")
print(f"check-layers: {len(edges)} include edges between {len(graph)} modules, "
      f"{len(up)} upward, {len(sccs)} cycle(s) "
      f"({sum(len(c) for c in sccs)} modules in them)")
cycled = sum(len(c) for c in sccs)
if not edges:
    print("check-layers: no include found: nothing was checked", file=sys.stderr)
    sys.exit(1)
if bad or len(up) > max_up or cycled > max_cycled:
    sys.exit(1)
if up or sccs:
    print(f"check-layers: tolerated (--at-most {max_up} {max_cycled})")
PY
