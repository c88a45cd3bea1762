#!/usr/bin/env bash
# Tests the container image that scripts/image builds (deploy/Containerfile). As root, with
# Debian's podman. Exits non-zero on any failure; the last line is "N passed, N failed".
#
#   1. the image, without running it: entry point and user from `podman image inspect`; the
#      exported root filesystem holds the three binaries, exactly the shared libraries they load
#      (`ld.so --list` under chroot resolves every one inside the image, none missing, none extra),
#      and the entry point runs under chroot as the unprivileged user;
#   2. the image, run by podman: `runtime --help`, `packager --version`, `registry --help`, the
#      default user is 65532;
#   3. a licensed call inside the container against an anvil on the host (--network host): the
#      image's own registry, packager and runtime deploy the LicenseRegistry, seal, publish,
#      deposit, authorize, then `runtime run` buys a block of units on chain and runs one call
#      as the unprivileged user (--no-kernel-meter: the kernel meter needs uid 0, see 4);
#   4. the same with the kernel meter attached: uid 0 with every capability dropped but BPF and
#      PERFMON (as the Helm chart runs it), the host's bpffs mounted; `license status` then shows
#      the meter pinned and the kernel's count. SEALBOX_SKIP_BPF=1 skips this step where the
#      kernel has no BPF (a failure to attach fails the test otherwise).
#
# Env: SEALBOX_IMAGE_NO_BUILD=1   test the image already built (default: scripts/image first)
#      SEALBOX_IMAGE_BIN_DIR=DIR  passed to scripts/image --bin-dir (binaries built elsewhere)
#      SEALBOX_IMAGE=NAME:TAG     image to test (default localhost/sealbox:<chart appVersion>)
#      SEALBOX_PODMAN_RUN_FLAGS   flags for every `podman run` (default: see RUN_FLAGS below)
#      SEALBOX_ANVIL=PATH         anvil (default license-contract/node_modules/.bin/anvil)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' deploy/helm/sealbox/Chart.yaml)
IMAGE=${SEALBOX_IMAGE:-localhost/sealbox:${VERSION:-latest}}
T0=$(date +%s)

if [ "${SEALBOX_IMAGE_NO_BUILD:-}" != 1 ]; then
  args=(--tag "$IMAGE")
  [ -n "${SEALBOX_IMAGE_BIN_DIR:-}" ] && args+=(--bin-dir "$SEALBOX_IMAGE_BIN_DIR")
  scripts/image "${args[@]}"
fi
T_BUILT=$(date +%s)

# `podman run` flags this machine needs (a container sandbox itself, measured):
#  --runtime runc: crun 1.8 refuses the host's hybrid cgroups ("cgroups in hybrid mode not
#    supported, drop all controllers from cgroupv2"); runc runs it.
#  --ulimit: podman's default limits (nofile 1048576, nproc) are above this host's hard limits
#    and setting them needs CAP_SYS_RESOURCE, which the host's root lacks ("setrlimit
#    RLIMIT_NOFILE: Operation not permitted"); the host's own hard limits are kept.
if [ -n "${SEALBOX_PODMAN_RUN_FLAGS:-}" ]; then
  read -r -a RUN_FLAGS <<<"$SEALBOX_PODMAN_RUN_FLAGS"
else
  RUN_FLAGS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
  command -v runc >/dev/null && RUN_FLAGS+=(--runtime runc)
fi

WORK=$(mktemp -d -t sealbox-image-test.XXXXXX)
chmod 0755 "$WORK"
ANVIL_PID='' CID='' PIN_DIR=/sys/fs/bpf/sealbox-image-test-$$
cleanup() {
  [ -n "$ANVIL_PID" ] && kill "$ANVIL_PID" 2>/dev/null || true
  [ -n "$CID" ] && podman rm -f "$CID" >/dev/null 2>&1 || true
  rm -rf "$PIN_DIR" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() {
  echo "image test: build $((T_BUILT - T0)) s, checks $(($(date +%s) - T_BUILT)) s"
  echo "$PASS passed, $FAIL failed"
  if [ "$FAIL" = 0 ]; then exit 0; else exit 1; fi
}

# --- 1. the image without running it ------------------------------------------
echo "== 1. $IMAGE: configuration and root filesystem"
entry=$(podman image inspect --format '{{json .Config.Entrypoint}}' "$IMAGE")
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
check "entry point is /usr/local/bin/runtime (got $entry)" [ "$entry" = '["/usr/local/bin/runtime"]' ]
check "default user is 65532:65532 (got $user)" [ "$user" = 65532:65532 ]
ROOTFS=$WORK/rootfs
mkdir "$ROOTFS"
CID=$(podman create "$IMAGE")
podman export "$CID" | tar -x -C "$ROOTFS" --numeric-owner
podman rm "$CID" >/dev/null
CID=
for b in runtime packager registry; do
  check "/usr/local/bin/$b is an executable" [ -x "$ROOTFS/usr/local/bin/$b" ]
  # the image's own dynamic loader, inside the image: every library resolves there
  if list=$(chroot "$ROOTFS" /lib64/ld-linux-x86-64.so.2 --list "/usr/local/bin/$b" 2>&1) &&
    ! grep -q 'not found' <<<"$list"; then
    ok "$b: every shared library resolves inside the image"
  else
    bad "$b: unresolved libraries: $list"
  fi
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$list" >>"$WORK/needed"
done
sort -u "$WORK/needed" -o "$WORK/needed"
(cd "$ROOTFS" && find . \( -name '*.so' -o -name '*.so.*' \) | sed 's/^\.//' | sort) >"$WORK/present"
# ld.so reports the libraries by the path it found them at; the loader itself by PT_INTERP
check "exactly the libraries the binaries load ($(paste -sd' ' "$WORK/needed"))" \
  cmp -s "$WORK/needed" "$WORK/present"
out=$(chroot --userspec=65532:65532 "$ROOTFS" /usr/local/bin/runtime --help 2>&1) || true
check "the entry point runs under chroot as uid 65532" grep -q '^Usage: runtime' <<<"$out"
out=$(chroot --userspec=65532:65532 "$ROOTFS" /bin/sh -c 'mkdir -p /tmp/x && packager --version && rm -r /tmp/x' 2>&1) || true
check "/bin/sh, mkdir, rm and packager on PATH for the chart's init container" grep -q '^packager ' <<<"$out"
check "CA certificates for an https RPC" [ -s "$ROOTFS/etc/ssl/certs/ca-certificates.crt" ]

# --- 2. the image run by podman ---------------------------------------------------------
echo "== 2. podman run ${RUN_FLAGS[*]}"
if ! probe=$(podman run --rm "${RUN_FLAGS[@]}" "$IMAGE" --help 2>&1); then
  bad "podman run $IMAGE --help: $probe"
  echo "podman cannot run the image here: steps 2 to 4 not run" >&2
  finish
fi
ok "runtime --help in the container"
out=$(podman run --rm "${RUN_FLAGS[@]}" --entrypoint packager "$IMAGE" --version 2>&1) || true
check "packager --version in the container ($out)" grep -q "^packager $VERSION" <<<"$out"
out=$(podman run --rm "${RUN_FLAGS[@]}" --entrypoint registry "$IMAGE" --help 2>&1) || true
check "registry --help in the container" grep -q '^Usage: registry' <<<"$out"
out=$(podman run --rm "${RUN_FLAGS[@]}" --entrypoint id "$IMAGE" 2>&1) || true
check "runs as uid 65532 by default ($out)" grep -q '^uid=65532(sealbox) gid=65532(sealbox)' <<<"$out"

# --- 3. a licensed call inside the container, against an anvil on the host --------------
echo "== 3. seal → publish → license → buy ahead → run, every binary from the image, anvil on the host"
ANVIL=${SEALBOX_ANVIL:-$ROOT/license-contract/node_modules/.bin/anvil}
if [ ! -x "$ANVIL" ]; then SEALBOX_SKIP_FUZZ=1 scripts/setup; fi
PORT=$((20000 + RANDOM % 20000))
"$ANVIL" --port "$PORT" >"$WORK/anvil.log" 2>&1 &
ANVIL_PID=$!
for _ in $(seq 100); do grep -q "Listening on" "$WORK/anvil.log" 2>/dev/null && break; sleep 0.1; done
grep -q "Listening on" "$WORK/anvil.log" || { cat "$WORK/anvil.log" >&2; bad "anvil did not start"; finish; }
RPC=http://127.0.0.1:$PORT
# anvil's funded dev accounts: (0) platform, (1) vendor, (2) customer, (3) treasury, (4) signer
dev_key() { grep -A12 "Private Keys" "$WORK/anvil.log" | grep "^($1)" | awk '{print $2}'; }
for pair in 0:platform 1:vendor 2:customer 3:treasury 4:signer; do
  (umask 077; dev_key "${pair%%:*}" >"$WORK/${pair#*:}.key")
done
cp examples/wat/credit_score.wat examples/inputs/applicant.json "$WORK/"
mkdir -m 0700 "$WORK/state"
# the unprivileged user owns the work directory (the runtime refuses keys others can read)
chown -R 65532:65532 "$WORK/"*.key "$WORK/state" "$WORK/credit_score.wat" "$WORK/applicant.json"
chown 65532:65532 "$WORK"
# every command: the host's network (anvil on loopback), the work directory at the same path
in_image() {
  local entry=$1; shift
  podman run --rm "${RUN_FLAGS[@]}" --network host -v "$WORK:$WORK" -w "$WORK" \
    -e SEALBOX_RPC="$RPC" -e SEALBOX_STATE_DIR="$WORK/state" ${REG:+-e SEALBOX_REGISTRY="$REG"} \
    "${EXTRA[@]}" --entrypoint "$entry" "$IMAGE" "$@"
}
EXTRA=()
REG=
addr() { in_image packager pubkey --key "$WORK/$1.key" | awk '$1 == "address" {print $2}'; }
step3() {
  CUSTOMER=$(addr customer) TREASURY=$(addr treasury) SIGNER=$(addr signer)
  CUSTOMER_PUB=$(in_image packager pubkey --key "$WORK/customer.key" | awk '$1 == "pubkey" {print $2}')
  REG=$(in_image registry deploy --rpc "$RPC" --key "$WORK/platform.key" --fee-bps 3000 --treasury "$TREASURY")
  in_image packager seal "$WORK/credit_score.wat" --key "$WORK/vendor.key" \
    --name credit-score --version 1.0.0 --chain-id 31337 --registry "$REG" \
    --metering kernel-preferred --fuel 50000000 --max-memory-pages 64 \
    --recipient "$CUSTOMER_PUB" -o "$WORK/credit-score.sealed.wasm"
  in_image packager publish "$WORK/credit-score.sealed.wasm" --rpc "$RPC" --key "$WORK/vendor.key" --price 1000000000
  in_image runtime license deposit "$WORK/credit-score.sealed.wasm" --amount 1000000000000000 --key "$WORK/customer.key"
  in_image runtime license authorize "$WORK/credit-score.sealed.wasm" --signer "$SIGNER" --key "$WORK/customer.key"
}
if step3 >"$WORK/setup.log" 2>&1; then
  ok "registry deploy, packager seal + publish, license deposit + authorize: all in the container"
else
  cat "$WORK/setup.log" >&2
  bad "the chain set-up in the container failed"
  finish
fi
RUN_AS=(--key "$WORK/signer.key" --customer "$CUSTOMER" --decrypt-key "$WORK/customer.key")
if out=$(in_image runtime run "$WORK/credit-score.sealed.wasm" "${RUN_AS[@]}" --no-kernel-meter \
  --prepay-min-units 10 --input "$WORK/applicant.json" 2>"$WORK/run3.err"); then
  echo "$out"
  check "runtime run as uid 65532: a licensed call answered" grep -q 'score' <<<"$out"
else
  cat "$WORK/run3.err" >&2
  bad "runtime run as uid 65532 in the container failed"
fi
status=$(in_image runtime license status "$WORK/credit-score.sealed.wasm" --key "$WORK/signer.key" \
  --customer "$CUSTOMER" --json 2>&1) || true
bought=$(jq -r '.usage.bought_units' <<<"$status" 2>/dev/null || echo "?")
used=$(jq -r '.usage.runtime_units' <<<"$status" 2>/dev/null || echo "?")
check "bought on chain before use: 10 units bought, 1 used (got $bought, $used)" [ "$bought/$used" = 10/1 ]

# --- 4. the same with the kernel meter --------------------------------------------------
echo "== 4. the kernel meter in the container: uid 0, --cap-drop ALL --cap-add BPF,PERFMON, bpffs mounted"
if [ "${SEALBOX_SKIP_BPF:-}" = 1 ]; then
  echo "skipped: SEALBOX_SKIP_BPF=1"
  finish
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
# root in the container holds no capability but those added: no CAP_DAC_OVERRIDE, so root owns
# what it reads (as in the Helm chart, which runs the meter's containers as uid 0 the same way)
chown -R 0:0 "$WORK"
# Debian's podman 4.3 seccomp profile allows bpf and perf_event_open only with CAP_SYS_ADMIN
# (newer profiles, and containerd's RuntimeDefault, allow them with CAP_BPF / CAP_PERFMON): the
# same profile with those two syscalls allowed for CAP_BPF / CAP_PERFMON as well.
SECCOMP=$WORK/seccomp.json
python3 - /usr/share/containers/seccomp.json "$SECCOMP" <<'EOF'
import json, sys
profile = json.load(open(sys.argv[1]))
for rule in profile["syscalls"]:
    rule["names"] = [n for n in rule["names"] if n not in ("bpf", "perf_event_open")]
profile["syscalls"] = [r for r in profile["syscalls"] if r["names"]]
for name, cap in (("bpf", "CAP_BPF"), ("perf_event_open", "CAP_PERFMON")):
    profile["syscalls"] += [
        {"names": [name], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}},
        {"names": [name], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]},
         "excludes": {"caps": [cap]}},
        {"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "excludes": {"caps": ["CAP_SYS_ADMIN", cap]}},
    ]
json.dump(profile, open(sys.argv[2], "w"), indent=1)
EOF
mkdir -m 0700 "$WORK/state-root"
# least privilege first. The meter's uprobe_multi link (Linux 6.6+) needs no perf event and
# attaches with CAP_BPF + CAP_PERFMON alone; where the kernel has no such link the meter falls
# back to a perf-event uprobe, which this kernel refuses without CAP_SYS_ADMIN (measured:
# perf_event_open EACCES with CAP_BPF + CAP_PERFMON alone, in or out of a container): then once
# more with CAP_SYS_ADMIN, and say so
metered_run() {
  in_image runtime run "$WORK/credit-score.sealed.wasm" "${RUN_AS[@]}" \
    --prepay-min-units 10 --input "$WORK/applicant.json" 2>"$WORK/run4.err"
}
as_root_with() {
  EXTRA=(--user 0:0 --cap-drop ALL --cap-add "$1" --security-opt "seccomp=$SECCOMP"
    -v /sys/fs/bpf:/sys/fs/bpf -e SEALBOX_METER_PIN_DIR="$PIN_DIR" -e SEALBOX_STATE_DIR="$WORK/state-root")
}
CAPS=BPF,PERFMON
as_root_with $CAPS
out=$(metered_run) || true
if grep -q 'kernel meter not attached' "$WORK/run4.err"; then
  echo "with --cap-add $CAPS only: $(grep -o 'kernel meter not attached.*' "$WORK/run4.err")"
  CAPS=BPF,PERFMON,SYS_ADMIN
  echo "again with --cap-add $CAPS"
  rm -rf "$PIN_DIR"
  as_root_with $CAPS
  out=$(metered_run) || true
fi
echo "$out"
check "runtime run with the meter (--cap-add $CAPS): a licensed call answered" grep -q 'score' <<<"$out"
if grep -q 'kernel meter not attached' "$WORK/run4.err"; then
  bad "the kernel meter did not attach: $(grep -o 'kernel meter not attached.*' "$WORK/run4.err")"
else
  ok "the kernel meter attached with --cap-add $CAPS (no 'kernel meter not attached' warning)"
fi
status=$(in_image runtime license status "$WORK/credit-score.sealed.wasm" --key "$WORK/signer.key" \
  --customer "$CUSTOMER" --json 2>&1) || true
pinned=$(jq -r '.kernel_meter.pinned' <<<"$status" 2>/dev/null || echo "?")
kcount=$(jq -r '.kernel_meter.count' <<<"$status" 2>/dev/null || echo "?")
kunits=$(jq -r '.usage.kernel_units' <<<"$status" 2>/dev/null || echo "?")
check "meter maps pinned in the host's bpffs at $PIN_DIR (got $pinned)" [ "$pinned" = true ]
check "the kernel counted the call: count 1, kernel units 1 (got $kcount, $kunits)" [ "$kcount/$kunits" = 1/1 ]
echo "kernel meter in the container needed: --cap-add $CAPS"
kernel=$(uname -r)
if [ "$(printf '%s\n' 6.6 "${kernel%%-*}" | sort -V | head -1)" = 6.6 ]; then
  check "kernel $kernel has uprobe_multi links: the meter attached with BPF,PERFMON alone (got $CAPS)" \
    [ "$CAPS" = BPF,PERFMON ]
fi
finish
