#!/usr/bin/env bash
# bench/run.sh — the data-plane benchmark of docs/performance.md (`make bench`).
#
# Builds torii, writes the realistic config (go run ./bench/realistic: the
# router benchmark's mix of 1,000 routes, an SLO on every route, metrics,
# access log sampled at 1 %), starts torii pinned like the peers
# (GOMAXPROCS=1, CPU 1) and runs ../shared/bench/peers.sh against it beside
# nginx, HAProxy and Caddy, which prints the table and the ratios.
#
# Env: ROUTES (1000); EXTRA=1 also measures a one-route config
# (bench/torii.yaml) and the realistic table served from the edge cache;
# GOGC / GOMEMLIMIT are passed to torii when set; everything else (DUR,
# CONNS, SIZE, ROUNDS, NOPEERS) goes to peers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

CGO_ENABLED=0 go build -trimpath -o "$work/torii" ./cmd/torii
go run ./bench/realistic -routes "$routes" -port 18084 -admin 19901 -db "$work/torii.db" >"$work/torii.yaml"

start_torii torii "$work/torii" "$work/torii.yaml" 18084 19901
if [ -n "${EXTRA:-}" ]; then
  go run ./bench/realistic -routes "$routes" -port 18085 -admin 19902 -db "$work/cached.db" -cached >"$work/cached.yaml"
  start_torii torii-cached "$work/torii" "$work/cached.yaml" 18085 19902
  start_torii torii-1route "$work/torii" bench/torii.yaml 18086 19903
fi
echo "# torii $(git describe --always --dirty 2>/dev/null || echo '?'), $routes routes, $(go version | cut -d' ' -f3)"
bash "$peers" "${targets[@]}"
