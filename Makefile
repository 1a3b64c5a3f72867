# Shortcuts; scripts/test and bench/run.sh hold the logic.

.PHONY: build test bench bench-all

build:
	CGO_ENABLED=0 go build -trimpath -o bin/torii ./cmd/torii

test:
	bash scripts/test

# bench runs the realistic config beside nginx, HAProxy and Caddy
# (docs/performance.md); bench-all adds the one-route and cached targets.
bench:
	bash bench/run.sh

bench-all:
	EXTRA=1 bash bench/run.sh
