#!/usr/bin/env bash
# bench/sweep.sh — how torii's cost grows (docs/performance.md): routes
# (10, 1,000, 10,000; torii and the bare upstream only), response body size
# (64 B, 16 KiB, 1 MiB; beside the peers) and client connections (16, 64,
# 256; torii only). One round each (ROUNDS to change), so expect noise of
# a few microseconds; bench/run.sh is the three-round headline figure.
set -uo pipefail
cd "$(dirname "$0")/.."
export ROUNDS=${ROUNDS:-1}
for n in 10 1000 10000; do
  echo "## routes=$n"
  ROUTES=$n NOPEERS=1 bash bench/run.sh 2>&1 | grep -E '^(torii|direct) '
done
for size in 64 16384 1048576; do
  echo "## body=$size bytes"
  SIZE=$size bash bench/run.sh 2>&1 | grep -E '^(torii|direct|nginx|haproxy|caddy|ratio torii) '
done
for conns in 16 256; do
  echo "## connections=$conns"
  CONNS=$conns NOPEERS=1 bash bench/run.sh 2>&1 | grep -E '^(torii|direct) '
done
