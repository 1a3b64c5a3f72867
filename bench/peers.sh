#!/usr/bin/env bash
# bench/peers.sh — bench/run.sh with the extra targets (a one-route config
# and the realistic table served from the cache). See docs/performance.md.
EXTRA=${EXTRA:-1} exec bash "$(dirname "$0")/run.sh" "$@"
