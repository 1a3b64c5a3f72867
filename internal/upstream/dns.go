package upstream

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// maxLookupTime bounds one DNS lookup.
const maxLookupTime = 5 * time.Second

// resolveLoop resolves the pool's host names now and then every
// dns_refresh until ctx ends.
func (p *Pool) resolveLoop(ctx context.Context) {
	p.resolveAll(ctx)
	t := time.NewTicker(p.s.dnsRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.resolveAll(ctx)
		}
	}
}

// resolveAll looks every host name up and swaps in the resulting endpoint
// list. A name that fails keeps its last good addresses (or, never
// resolved, is dialed by name); the failure is logged, as nobody else
// would see it.
func (p *Pool) resolveAll(ctx context.Context) {
	for _, host := range p.names {
		ips, err := p.lookup(ctx, host)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.reg.log.Warn("upstream endpoint name did not resolve; keeping the last addresses",
				"upstream", p.name, "host", host, "err", err, "addresses", len(p.dnsLast[host]))
			continue
		}
		p.dnsLast[host] = ips
	}
	p.update(p.addrs())
}

// lookup returns host's distinct IP addresses, sorted.
func (p *Pool) lookup(ctx context.Context, host string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, min(maxLookupTime, p.s.dnsRefresh))
	defer cancel()
	raw, err := p.reg.resolver.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", host, err)
	}
	var ips []netip.Addr
	for _, s := range raw {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		ips = append(ips, ip.Unmap())
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	ips = slices.Compact(ips)
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolve %q: no addresses", host)
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out, nil
}
