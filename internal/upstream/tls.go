package upstream

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"

	"torii/internal/config"
)

// tlsKey is the part of a transportKey that describes TLS to the
// endpoints. It holds a digest of the files' contents, not their paths
// alone, so a reload after a certificate rotation builds a new transport.
type tlsKey struct {
	enabled    bool
	serverName string // verified and sent as SNI; "" : the dialed address
	insecure   bool
	digest     [sha256.Size]byte // of the CA, certificate and key files' contents
}

// clientTLS builds the TLS client config for an upstream speaking proto,
// and the key that identifies it. It returns a nil config and a zero key
// for a cleartext upstream. It reads the files named in cfg.TLS.
//
// The server name is cfg.TLS.ServerName; without one, the single host
// name the endpoints are written with (IP literals are verified against
// the certificate's IP addresses). Endpoints are dialed by their resolved
// addresses, so several different host names need an explicit server_name.
func clientTLS(cfg *config.Upstream, proto string) (*tls.Config, tlsKey, error) {
	c := cfg.TLS
	if c == nil {
		if proto != ProtocolH2 {
			return nil, tlsKey{}, nil
		}
		c = &config.UpstreamTLS{} // h2 is over TLS: system roots
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: c.InsecureSkipVerify,
	}
	k := tlsKey{enabled: true, insecure: c.InsecureSkipVerify}
	sum := sha256.New()
	read := func(what, path string) ([]byte, error) {
		var data []byte
		if path != "" {
			var err error
			if data, err = os.ReadFile(path); err != nil {
				return nil, fmt.Errorf("tls: read %s: %w", what, err)
			}
		}
		// Length-prefixed, so moving bytes between files changes the sum.
		sum.Write(binary.BigEndian.AppendUint64(nil, uint64(len(data))))
		sum.Write(data)
		return data, nil
	}
	ca, err := read("ca", c.CA)
	if err != nil {
		return nil, k, err
	}
	certPEM, err := read("cert", c.Cert)
	if err != nil {
		return nil, k, err
	}
	keyPEM, err := read("key", c.Key)
	if err != nil {
		return nil, k, err
	}
	copy(k.digest[:], sum.Sum(nil))

	if len(ca) > 0 {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(ca) {
			return nil, k, fmt.Errorf("tls: ca %q: no PEM certificate", c.CA)
		}
		tc.RootCAs = roots
	}
	switch {
	case c.Cert != "" && c.Key != "":
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, k, fmt.Errorf("tls: client certificate %q and key %q: %w", c.Cert, c.Key, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	case c.Cert != "" || c.Key != "":
		return nil, k, fmt.Errorf("tls: cert and key go together; got only one")
	}

	k.serverName = c.ServerName
	if k.serverName == "" {
		if k.serverName, err = endpointsHost(cfg.Endpoints); err != nil {
			return nil, k, err
		}
	}
	tc.ServerName = k.serverName
	return tc, k, nil
}

// endpointsHost returns the one host name (not IP literal) endpoints are
// written with, or "" when they are all IP literals. Malformed addresses
// are skipped: NewPool reports them.
func endpointsHost(endpoints []config.Endpoint) (string, error) {
	name := ""
	for _, e := range endpoints {
		host, _, err := net.SplitHostPort(e.Addr)
		if err != nil || host == "" {
			continue
		}
		if _, err := netip.ParseAddr(host); err == nil {
			continue
		}
		switch {
		case name == "":
			name = host
		case name != host:
			return "", fmt.Errorf("tls: endpoints name hosts %q and %q; set tls.server_name to the name their certificates carry", name, host)
		}
	}
	return name, nil
}
