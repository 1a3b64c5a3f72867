#!/usr/bin/env bash
# bench/ab.sh OLD NEW — a paired run of two torii binaries on the realistic
# config (docs/performance.md, "What each optimisation bought"): both are
# started pinned to CPU 1 (GOMAXPROCS=1) beside the bench upstream, and
# ../shared/bench/peers.sh alternates them round by round without the peers,
# so both see the same minute of this shared machine.
#
#   CGO_ENABLED=0 go build -trimpath -o /tmp/new ./cmd/torii
#   ROUNDS=5 bash bench/ab.sh /tmp/old /tmp/new
#
# Env: ROUTES (1000); ROUNDS (5), DUR, CONNS, SIZE go to peers.sh; OLD_ENV
# and NEW_ENV are extra environment for each binary ("GOGC=400").
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bench/ab.sh OLD NEW" >&2; exit 2; }
peers=${PEERS_SH:-../shared/bench/peers.sh}
routes=${ROUTES:-1000}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
targets=()
start() { # NAME BINARY PORT ADMIN ENV
  go run ./bench/realistic -routes "$routes" -port "$3" -admin "$4" -db "$work/$1.db" >"$work/$1.yaml"
  env $5 GOMAXPROCS=1 taskset -c 1 "$2" run -c "$work/$1.yaml" 2>"$work/$1.log" &
  pids+=($!)
  targets+=("$1=http://127.0.0.1:$3/=$!")
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$4/readyz" && return
    sleep 0.1
  done
  echo "ab: $1 did not become ready; its log:" >&2
  cat "$work/$1.log" >&2
  exit 1
}
start old "$1" 18084 19901 "${OLD_ENV:-}"
start new "$2" 18085 19902 "${NEW_ENV:-}"
NOPEERS=1 ROUNDS=${ROUNDS:-5} bash "$peers" "${targets[@]}"
