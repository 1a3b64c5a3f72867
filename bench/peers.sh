#!/usr/bin/env bash
# bench/peers.sh — build torii, start it pinned like the peers (GOMAXPROCS=1,
# CPU 1) twice — proxying (bench/torii.yaml) and serving the same route from
# its cache (bench/torii-cached.yaml) — and run ../shared/bench/peers.sh
# against both. Env is passed through to peers.sh (DUR, CONNS, SIZE, ROUNDS,
# NOPEERS).
set -euo pipefail
cd "$(dirname "$0")/.."
peers=${PEERS_SH:-../shared/bench/peers.sh}
[ -f "$peers" ] || { echo "bench: $peers not found" >&2; exit 2; }
bin=$(mktemp -d)/torii
CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/torii
GOMAXPROCS=1 taskset -c 1 "$bin" run -c bench/torii.yaml 2>/tmp/torii-bench.log &
pid=$!
GOMAXPROCS=1 taskset -c 1 "$bin" run -c bench/torii-cached.yaml 2>/tmp/torii-bench-cached.log &
cpid=$!
trap 'kill $pid $cpid 2>/dev/null; wait $pid $cpid 2>/dev/null' EXIT
for port in 19901 19902; do
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
done
bash "$peers" "torii=http://127.0.0.1:18084/=$pid" "torii-cached=http://127.0.0.1:18085/=$cpid"
