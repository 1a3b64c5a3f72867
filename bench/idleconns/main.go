// Command idleconns measures what idle keep-alive client connections cost
// a running torii in resident memory (docs/performance.md): it reads the
// process's VmRSS, opens -n connections to -url, sends one request on
// each and reads the response (so each connection has been through a
// whole request and sits idle in keep-alive), reads VmRSS again, and
// prints both and the cost per connection. The connections stay open
// until it has measured.
//
// Resident memory also holds garbage not yet collected, so it moves with
// where the collector happens to run (with GOGC=400, by a few KiB per
// connection from run to run). With -admin, torii's admin address, it
// also reports the live cost: it forces a collection (the heap profile
// endpoint's gc=1) before each reading and reads the live heap and the
// goroutine stacks from /metrics.
//
//	go run ./bench/idleconns -pid $(pgrep -f 'torii run') -n 10000 -url http://127.0.0.1:18084/ -admin http://127.0.0.1:19901
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	pid := flag.Int("pid", 0, "torii's process ID (required)")
	n := flag.Int("n", 10000, "connections to open")
	target := flag.String("url", "http://127.0.0.1:18084/", "torii URL answering 2xx")
	settle := flag.Duration("settle", 3*time.Second, "wait before each reading, for the GC and the kernel to settle")
	admin := flag.String("admin", "", "torii's admin URL, to report live heap and stacks after a forced collection too")
	flag.Parse()
	if *pid == 0 {
		fmt.Fprintln(os.Stderr, "idleconns: -pid is required")
		os.Exit(2)
	}
	u, err := url.Parse(*target)
	if err != nil {
		fail(err)
	}
	time.Sleep(*settle)
	before := rss(*pid)
	var heap0, stack0 float64
	if *admin != "" {
		heap0, stack0 = live(*admin)
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n"
	conns := make([]net.Conn, 0, *n)
	for i := range *n {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			fail(fmt.Errorf("connection %d: %w", i, err))
		}
		if _, err := c.Write([]byte(req)); err != nil {
			fail(fmt.Errorf("connection %d: %w", i, err))
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			fail(fmt.Errorf("connection %d: %w", i, err))
		}
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			fail(fmt.Errorf("connection %d: status %d", i, res.StatusCode))
		}
		conns = append(conns, c)
	}
	time.Sleep(*settle)
	after := rss(*pid)
	fmt.Printf("connections %d  rss before %.1f MiB  after %.1f MiB  per connection %.1f KiB\n",
		len(conns), float64(before)/1024, float64(after)/1024, float64(after-before)/float64(len(conns)))
	if *admin != "" {
		heap1, stack1 := live(*admin)
		per := func(a, b float64) float64 { return (b - a) / 1024 / float64(len(conns)) }
		fmt.Printf("live per connection (after a collection): heap %.2f KiB  stacks %.2f KiB  total %.2f KiB\n",
			per(heap0, heap1), per(stack0, stack1), per(heap0+stack0, heap1+stack1))
	}
	runtime.KeepAlive(conns)
	for _, c := range conns {
		c.Close()
	}
}

// live forces a collection in torii and returns its live heap and its
// goroutine stacks in bytes (go_memstats_heap_alloc_bytes and
// go_memstats_stack_inuse_bytes).
func live(admin string) (heap, stacks float64) {
	res, err := http.Get(admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		fail(err)
	}
	res.Body.Close()
	res, err = http.Get(admin + "/metrics")
	if err != nil {
		fail(err)
	}
	defer res.Body.Close()
	found := 0
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		var dst *float64
		switch {
		case !ok:
			continue
		case name == "go_memstats_heap_alloc_bytes":
			dst = &heap
		case name == "go_memstats_stack_inuse_bytes":
			dst = &stacks
		default:
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			fail(fmt.Errorf("%s: %w", name, err))
		}
		*dst = v
		found++
	}
	if err := sc.Err(); err != nil {
		fail(err)
	}
	if found != 2 {
		fail(fmt.Errorf("%s/metrics: no go_memstats_heap_alloc_bytes or go_memstats_stack_inuse_bytes", admin))
	}
	return heap, stacks
}

// rss returns the process's resident set size in KiB.
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		fail(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				fail(err)
			}
			return kb
		}
	}
	fail(fmt.Errorf("no VmRSS in /proc/%d/status", pid))
	return 0
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "idleconns:", err)
	os.Exit(1)
}
