#!/usr/bin/env bash
# bench/peers.sh — build torii, start it pinned like the peers (GOMAXPROCS=1,
# CPU 1) with bench/torii.yaml, and run ../shared/bench/peers.sh against it.
# Env is passed through to peers.sh (DUR, CONNS, SIZE, ROUNDS, NOPEERS).
set -euo pipefail
cd "$(dirname "$0")/.."
peers=${PEERS_SH:-../shared/bench/peers.sh}
[ -x "$peers" ] || [ -f "$peers" ] || { echo "bench: $peers not found" >&2; exit 2; }
bin=$(mktemp -d)/torii
CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/torii
GOMAXPROCS=1 taskset -c 1 "$bin" run -c bench/torii.yaml 2>/tmp/torii-bench.log &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:19901/readyz && break; sleep 0.1; done
bash "$peers" "torii=http://127.0.0.1:18084/=$pid"
