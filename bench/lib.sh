# bench/lib.sh — what bench/run.sh and bench/ab.sh share; sourced, not run.
# Sets peers, routes and work (a temporary directory removed on exit, with
# every torii started), and defines start_torii.
peers=${PEERS_SH:-../shared/bench/peers.sh}
[ -f "$peers" ] || { echo "bench: $peers not found" >&2; exit 2; }
routes=${ROUTES:-1000}
work=$(mktemp -d)
pids=()
targets=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# start_torii NAME BINARY CONFIG PORT ADMIN [ENV]: run BINARY on CONFIG
# pinned to CPU 1 with one P (like the peers), with the extra environment
# ENV ("GOGC=100"), wait until its admin port says ready, and add it to
# targets for peers.sh.
start_torii() {
  env ${6:-} GOMAXPROCS=1 taskset -c 1 "$2" run -c "$3" 2>"$work/$1.log" &
  pids+=($!)
  targets+=("$1=http://127.0.0.1:$4/=$!")
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$5/readyz" && return
    sleep 0.1
  done
  echo "bench: $1 did not become ready; its log:" >&2
  cat "$work/$1.log" >&2
  exit 1
}
