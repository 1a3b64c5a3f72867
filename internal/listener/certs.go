package listener

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"torii/internal/config"
)

// Certs is an immutable set of server certificates chosen by SNI. Reload
// builds a new Certs and swaps it into the atomic pointer ServerTLS reads,
// so new handshakes use the new certificates without rebinding the port;
// established connections keep theirs.
type Certs struct {
	// exact maps a lower-case DNS name to its certificate.
	exact map[string]*tls.Certificate
	// wildcard maps the parent domain of a "*.example.com" name
	// ("example.com") to its certificate.
	wildcard map[string]*tls.Certificate
	// def is the first certificate, for clients that send no or an unknown
	// server name.
	def *tls.Certificate
}

// LoadCerts reads and parses every certificate and key pair. The first is
// the default. An error names the files at fault.
func LoadCerts(cfgs []config.Certificate) (*Certs, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("load certificates: none configured")
	}
	cs := &Certs{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}}
	for i, c := range cfgs {
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("load certificate %s (key %s): %w", c.Cert, c.Key, err)
		}
		if pair.Leaf == nil {
			if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				return nil, fmt.Errorf("load certificate %s: %w", c.Cert, err)
			}
		}
		cs.add(&pair, i == 0)
	}
	return cs, nil
}

// NewCerts builds a Certs from parsed certificates (each with Leaf set or
// parseable); the first is the default.
func NewCerts(certs ...tls.Certificate) (*Certs, error) {
	if len(certs) == 0 {
		return nil, errors.New("new certificates: none given")
	}
	cs := &Certs{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}}
	for i := range certs {
		c := &certs[i]
		if c.Leaf == nil {
			leaf, err := x509.ParseCertificate(c.Certificate[0])
			if err != nil {
				return nil, fmt.Errorf("new certificates: [%d]: %w", i, err)
			}
			c.Leaf = leaf
		}
		cs.add(c, i == 0)
	}
	return cs, nil
}

// add indexes c by the DNS names of its leaf. An earlier certificate
// keeps a name that a later one repeats.
func (cs *Certs) add(c *tls.Certificate, def bool) {
	if def {
		cs.def = c
	}
	for _, name := range c.Leaf.DNSNames {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if parent, ok := strings.CutPrefix(name, "*."); ok {
			if _, dup := cs.wildcard[parent]; !dup {
				cs.wildcard[parent] = c
			}
			continue
		}
		if _, dup := cs.exact[name]; !dup {
			cs.exact[name] = c
		}
	}
}

// Get returns the certificate for a server name: an exact DNS name match,
// then a wildcard one label deep ("*.example.com" serves
// "api.example.com", not "example.com" nor "a.b.example.com", RFC 6125
// §6.4.3), then the default.
func (cs *Certs) Get(serverName string) *tls.Certificate {
	name := strings.ToLower(strings.TrimSuffix(serverName, "."))
	if c, ok := cs.exact[name]; ok {
		return c
	}
	if _, parent, ok := strings.Cut(name, "."); ok && parent != "" {
		if c, ok := cs.wildcard[parent]; ok {
			return c
		}
	}
	return cs.def
}

// ServerTLS returns the TLS configuration of a listener: minimum version
// from c ("1.3", otherwise 1.2) and the certificate picked by SNI from
// whatever Certs certs holds at handshake time. Serve sets NextProtos.
func ServerTLS(c *config.ListenerTLS, certs *atomic.Pointer[Certs]) *tls.Config {
	min := uint16(tls.VersionTLS12)
	if c != nil && c.MinVersion == "1.3" {
		min = tls.VersionTLS13
	}
	return &tls.Config{
		MinVersion: min,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			cs := certs.Load()
			if cs == nil {
				return nil, errors.New("no certificates loaded")
			}
			return cs.Get(hello.ServerName), nil
		},
	}
}
