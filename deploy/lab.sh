#!/usr/bin/env bash
# A lab of three machines on this host, made of network namespaces, running a campaign
# over TLS with a token: lab1 the coordinator, lab2 and lab3 the workers.
#
#   deploy/lab.sh up [CAMPAIGN] [--out DIR]   build the lab, run CAMPAIGN (default
#                                             campaigns/quick.toml), fetch its report
#                                             into DIR (default results/lab); the lab
#                                             stays up for `status`, grpcurl, metrics
#   deploy/lab.sh down                        remove every namespace, link, process
#                                             and temporary file the lab made
#
# Needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2 and openssl. Binaries come
# from $ECOBENCH_BIN, else target/release, else target/debug. The network (198.18.0.0/15
# is reserved for benchmarking, RFC 2544, never a private range):
#
#   host   bridge ecobench-lab0  198.18.0.1/24
#   lab1   netns ecobench-lab1   198.18.0.11   coordinator :50051 (TLS, token)
#   lab2   netns ecobench-lab2   198.18.0.12   worker
#   lab3   netns ecobench-lab3   198.18.0.13   worker
#
# Every name starts with ecobench-lab; `up` first runs `down`, so a leftover of a
# crashed run goes. Temporary files (CA, certificates, token, db, logs, worker state)
# live in ${TMPDIR:-/tmp}/ecobench-lab; a failed `up` prints the logs and tears down.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bridge=ecobench-lab0
machines=(ecobench-lab1 ecobench-lab2 ecobench-lab3)
declare -A addr=([ecobench-lab1]=198.18.0.11 [ecobench-lab2]=198.18.0.12 [ecobench-lab3]=198.18.0.13)
coord_addr=198.18.0.11:50051
work=${TMPDIR:-/tmp}/ecobench-lab
timeout_s=${LAB_TIMEOUT_S:-1800}

say() { echo "lab: $*"; }
die() { echo "lab: $*" >&2; exit 1; }

find_bin() {
  local dir
  for dir in "${ECOBENCH_BIN:-}" "$repo/target/release" "$repo/target/debug"; do
    if [ -n "$dir" ] && [ -x "$dir/coordinator" ] && [ -x "$dir/worker" ]; then
      echo "$dir"
      return
    fi
  done
  die "no coordinator and worker binaries in \$ECOBENCH_BIN, target/release or target/debug: run 'cargo build --release'"
}

# Polls `cmd` every 0.1 s until it succeeds or `limit_s` pass.
wait_for() {
  local limit_s=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit_s))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${limit_s}s waiting for $what"
    sleep 0.1
  done
}

down() {
  local ns pid pids
  for ns in "${machines[@]}"; do
    ip netns list 2>/dev/null | grep -qw "^$ns" || continue
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      # SIGTERM first (workers hand their job back, the coordinator flushes).
      kill -TERM $pids 2>/dev/null || true
      for _ in $(seq 100); do
        [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
        sleep 0.1
      done
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep '^ecobench-lab' || true); do
    ip link del "$link" 2>/dev/null || true
  done
  rm -rf "$work"
}

make_network() {
  ip link add "$bridge" type bridge
  ip addr add 198.18.0.1/24 dev "$bridge"
  ip link set "$bridge" up
  local ns
  for ns in "${machines[@]}"; do
    ip netns add "$ns"
    ip link add "$ns" type veth peer name eth0 netns "$ns"
    ip link set "$ns" master "$bridge" up
    ip -n "$ns" addr add "${addr[$ns]}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done
  say "network: bridge $bridge 198.18.0.1/24; lab1 198.18.0.11, lab2 198.18.0.12, lab3 198.18.0.13"
}

make_pki() {
  local pki=$work/pki
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=ecobench-lab-ca -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=lab1 -keyout "$pki/server.key" -out "$pki/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:198.18.0.11,DNS:lab1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' \
    > "$pki/server.ext"
  openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 2 -extfile "$pki/server.ext" -out "$pki/server.pem" 2>/dev/null
  (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$work/token")
  say "pki: CA and a server certificate for IP 198.18.0.11 in $pki; token in $work/token"
}

# Runs `$@` in namespace `ns` in the background, its output in `log`.
start_in() {
  local ns=$1 log=$2
  shift 2
  NO_COLOR=1 ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
}

# The flags a binary knows (metrics arrived with issue 10; older builds lack it).
has_flag() { "$1" "${@:2:$#-2}" --help 2>/dev/null | grep -q -- "${*: -1}"; }

start_cluster() {
  local bin=$1 pki=$work/pki extra=()
  mkdir -p "$work/lab1"
  has_flag "$bin/coordinator" serve --metrics && extra=(--metrics 198.18.0.11:9464)
  start_in ecobench-lab1 "$work/lab1/coordinator.log" "$bin/coordinator" serve \
    --listen "$coord_addr" --db "$work/lab1/ecobench.db" --token-file "$work/token" \
    --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" "${extra[@]}"
  wait_for 30 "the coordinator to listen (log: $work/lab1/coordinator.log)" \
    grep -q "^listening on" "$work/lab1/coordinator.log"
  say "lab1: coordinator listening on $coord_addr (TLS, token)"
  local ns name
  for ns in ecobench-lab2 ecobench-lab3; do
    name=${ns#ecobench-}
    mkdir -p "$work/$name"
    extra=()
    has_flag "$bin/worker" --metrics && extra=(--metrics "${addr[$ns]}:9465")
    start_in "$ns" "$work/$name/worker.log" "$bin/worker" --join "$coord_addr" \
      --token-file "$work/token" --ca "$pki/ca.pem" --worker-id "$name" --country FRA \
      --data-dir "$repo/data" --state-dir "$work/$name/state" "${extra[@]}"
    say "$name: worker joining $coord_addr"
  done
}

# The client flags every host-side call uses.
client() { "$bin/coordinator" "$1" --addr "$coord_addr" --token-file "$work/token" --ca "$work/pki/ca.pem" "${@:2}"; }

workers_joined() { client status | grep -q lab2 && client status | grep -q lab3; }

on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] && return
  echo "lab: failed (exit $rc); the last lines of every log:" >&2
  local log
  for log in "$work"/lab*/*.log; do
    [ -f "$log" ] && { echo "== $log" >&2; tail -n 20 "$log" >&2; }
  done
  down
}

up() {
  local campaign=$repo/campaigns/quick.toml out=$repo/results/lab
  while [ $# -gt 0 ]; do
    case "$1" in
      --out) out=${2:?--out needs a folder}; shift 2 ;;
      -*) die "unknown option '$1' (usage: deploy/lab.sh up [CAMPAIGN] [--out DIR])" ;;
      *) campaign=$1; shift ;;
    esac
  done
  [ -f "$campaign" ] || die "campaign file '$campaign' not found"
  command -v openssl >/dev/null || die "openssl is needed for the lab's CA"
  bin=$(find_bin)
  down
  trap on_exit EXIT
  mkdir -p "$work"
  say "binaries from $bin"
  make_network
  make_pki
  start_cluster "$bin"
  wait_for 60 "both workers to join" workers_joined
  say "workers lab2 and lab3 joined"
  local id
  id=$(client submit "$campaign" | tail -n 1)
  say "submitted $campaign from the host: campaign $id"
  mkdir -p "$out"
  timeout "$timeout_s" "$bin/coordinator" report "$id" --wait --addr "$coord_addr" \
    --token-file "$work/token" --ca "$work/pki/ca.pem" --out "$out"
  say "report of campaign $id in $out"
  ls "$out"
  say "the lab is still up; from the host:"
  say "  $bin/coordinator status --addr $coord_addr --token-file $work/token --ca $work/pki/ca.pem"
  has_flag "$bin/coordinator" serve --metrics && say "  metrics: http://198.18.0.11:9464/metrics, http://198.18.0.12:9465/metrics, http://198.18.0.13:9465/metrics"
  say "deploy/lab.sh down removes it"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down; say "down: no ecobench-lab namespace, link, process or file left" ;;
  *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
