// Command torii is the edge gateway: `torii run -c torii.yaml` serves,
// `torii validate -c torii.yaml` checks a config, `torii demo` runs the
// whole system in a box on loopback (docs/demo.md), `torii slo rules -c
// torii.yaml` prints Prometheus rules for its SLOs, `torii version` prints
// the build.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"torii/internal/app"
	"torii/internal/config"
	"torii/internal/demo"
	"torii/internal/slorules"
	"torii/internal/version"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitInvalid = 2 // invalid config or usage
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitInvalid
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "slo":
		return cmdSLO(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		v := version.Get()
		fmt.Fprintf(stdout, "torii %s (commit %s, %s)\n", v.Version, v.Commit, v.GoVersion)
		return exitOK
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "torii: unknown command %q\n", args[0])
	usage(stderr)
	return exitInvalid
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: torii <command> [flags]

commands:
  run -c FILE        serve: the data plane and the admin listener
  validate -c FILE   check a config; print every problem with its path and line
  demo               the whole system in a box on loopback: a monolith, two
                     services, an Authority, torii with a live migration
                     (flags: -listen, -admin, -rate, -log-level)
  slo rules -c FILE  print Prometheus recording and alerting rules for every SLO
  version            print version, commit and Go version
`)
}

func configFlag(name string, args []string, stderr io.Writer) (*flag.FlagSet, *string, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "torii.yaml", "config file")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	return fs, path, level
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs, path, _ := configFlag("validate", args, stderr)
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if _, err := config.Load(*path); err != nil {
		return reportConfigError(err, stderr)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return exitOK
}

func cmdSLO(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "rules" {
		fmt.Fprintln(stderr, "usage: torii slo rules -c FILE")
		return exitInvalid
	}
	fs, path, _ := configFlag("slo rules", args[1:], stderr)
	if err := fs.Parse(args[1:]); err != nil {
		return exitInvalid
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return reportConfigError(err, stderr)
	}
	out, err := slorules.Generate(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "torii: slo rules: %v\n", err)
		return exitFailure
	}
	stdout.Write(out)
	return exitOK
}

func reportConfigError(err error, stderr io.Writer) int {
	var probs config.Problems
	if errors.As(err, &probs) {
		fmt.Fprintln(stderr, probs.Error())
		fmt.Fprintf(stderr, "%d problem(s) found\n", len(probs))
		return exitInvalid
	}
	fmt.Fprintf(stderr, "torii: %v\n", err)
	return exitInvalid
}

func cmdRun(args []string, stderr io.Writer) int {
	fs, path, level := configFlag("run", args, stderr)
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "torii: -log-level: %v\n", err)
		return exitInvalid
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	gcDefaults(logger)

	a, err := app.New(app.Options{ConfigPath: *path, Logger: logger})
	if err != nil {
		return reportConfigError(err, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			a.Reload(ctx)
		}
	}()
	if err := a.Run(ctx); err != nil {
		logger.Error("torii stopped", "err", err)
		return exitFailure
	}
	return exitOK
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", demo.DefaultListen, "the gateway's address, on loopback (port 0: any free port)")
	adminAddr := fs.String("admin", demo.DefaultAdmin, "the admin API and dashboard's address, on loopback")
	rate := fs.Float64("rate", demo.DefaultRate, "synthetic requests per second (0: none)")
	level := fs.String("log-level", "warn", "log level of torii and the demo's servers: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "torii: demo: unexpected argument %q\n", fs.Arg(0))
		return exitInvalid
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "torii: -log-level: %v\n", err)
		return exitInvalid
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// A second Ctrl-C, while the demo stops, kills it the default way.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := demo.Run(ctx, demo.Options{Listen: *listen, Admin: *adminAddr, Rate: *rate, Out: stdout, Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "torii: %v\n", err)
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintln(stderr, "torii: choose other ports, e.g. torii demo -listen 127.0.0.1:0 -admin 127.0.0.1:0")
		}
		return exitFailure
	}
	return exitOK
}

// defaultGCPercent is torii's GOGC when the environment sets none: the heap
// may grow to five times the live heap between collections, which cut about
// 3 µs of CPU per proxied request in paired runs (docs/performance.md).
const defaultGCPercent = 400

// memoryLimitShare is the share of the cgroup's memory limit torii sets as
// Go's soft memory limit when GOMEMLIMIT is unset, so the raised GOGC cannot
// grow the heap past the container.
const memoryLimitShare = 0.8

// gcDefaults applies torii's garbage-collector defaults for the variables
// the environment leaves unset: GOGC=400, and a soft memory limit of 80 % of
// the cgroup's memory limit when there is one (none otherwise). GOGC and
// GOMEMLIMIT, when set, win as usual. It logs what the collector runs with.
func gcDefaults(logger *slog.Logger) {
	gogc := os.Getenv("GOGC")
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
		gogc = strconv.Itoa(defaultGCPercent) + " (torii default)"
	}
	limit := os.Getenv("GOMEMLIMIT")
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		limit = "none"
		if n := cgroupMemoryLimit(cgroupMemoryFiles...); n > 0 {
			l := int64(float64(n) * memoryLimitShare)
			debug.SetMemoryLimit(l)
			limit = strconv.FormatInt(l, 10) + " (torii default: 80 % of the cgroup's " + strconv.FormatInt(n, 10) + ")"
		}
	}
	logger.Info("garbage collector", "gogc", gogc, "memory_limit", limit)
}

// cgroupMemoryFiles hold the memory limit of torii's cgroup: v2's
// memory.max, else v1's memory.limit_in_bytes.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// cgroupMemoryLimit returns the memory limit in the first readable of
// files, in bytes, or 0 when there is none or it cannot be read.
func cgroupMemoryLimit(files ...string) int64 {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max" (v2) and a page-rounded MaxInt64 (v1) mean no limit.
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0
		}
		return n
	}
	return 0
}
