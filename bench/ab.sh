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
. bench/lib.sh
# config NAME PORT ADMIN: the realistic config with its own ports and store.
config() { go run ./bench/realistic -routes "$routes" -port "$2" -admin "$3" -db "$work/$1.db" >"$work/$1.yaml"; }
config old 18084 19901
config new 18085 19902
start_torii old "$1" "$work/old.yaml" 18084 19901 "${OLD_ENV:-}"
start_torii new "$2" "$work/new.yaml" 18085 19902 "${NEW_ENV:-}"
NOPEERS=1 ROUNDS=${ROUNDS:-5} bash "$peers" "${targets[@]}"
