package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"
)

// Defaults and validation of listener TLS, HTTP/2 and upstream protocols
// (docs/tls.md).

// TLS versions, the values of ListenerTLS.MinVersion.
const (
	TLSVersion12 = "1.2"
	TLSVersion13 = "1.3"
)

// Upstream protocols, the values of Upstream.Protocol.
const (
	// ProtocolHTTP1 is HTTP/1.1, over TLS when the upstream has tls.
	ProtocolHTTP1 = "http1"
	// ProtocolH2 is HTTP/2 over TLS, negotiated by ALPN.
	ProtocolH2 = "h2"
	// ProtocolH2C is cleartext HTTP/2 with prior knowledge.
	ProtocolH2C = "h2c"
)

// Defaults of listener TLS and HTTP/2, documented on their fields.
const (
	DefaultTLSMinVersion        = TLSVersion12
	DefaultMaxConcurrentStreams = 100
	DefaultUpstreamProtocol     = ProtocolHTTP1
)

var (
	tlsVersions       = []string{TLSVersion12, TLSVersion13}
	upstreamProtocols = []string{ProtocolHTTP1, ProtocolH2, ProtocolH2C}
)

func (l *Listener) applyTLSDefaults() {
	if l.TLS != nil {
		setString(&l.TLS.MinVersion, DefaultTLSMinVersion)
	}
	setInt(&l.HTTP2.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
}

func (u *Upstream) applyTLSDefaults() {
	setString(&u.Protocol, DefaultUpstreamProtocol)
}

// listenerTLS checks a listener's tls and http2 blocks. It reads the
// certificate files: a pair that does not load is reported here rather
// than when the listener starts.
func (v *checker) listenerTLS(p string, l *Listener) {
	if t := l.TLS; t != nil {
		tp := p + ".tls"
		if len(t.Certificates) == 0 {
			v.addf(tp+".certificates", "at least one certificate is required, e.g. [{cert: /etc/torii/tls.crt, key: /etc/torii/tls.key}]")
		}
		for i, c := range t.Certificates {
			v.keyPair(tp+".certificates["+strconv.Itoa(i)+"]", c.Cert, c.Key, true)
		}
		if !slices.Contains(tlsVersions, t.MinVersion) {
			v.addf(tp+".min_version", "%s", unknownValue("min_version", t.MinVersion, tlsVersions))
		}
	}
	h := l.HTTP2
	switch {
	case h.H2C && l.TLS != nil:
		v.addf(p+".http2.h2c", "h2c is cleartext HTTP/2 for listeners without tls; with tls, clients get HTTP/2 by ALPN, so remove h2c")
	case h.H2C && h.Disabled:
		v.addf(p+".http2.h2c", "h2c needs HTTP/2, which http2.disabled turns off; remove one of them")
	}
	v.atLeast(p+".http2.max_concurrent_streams", h.MaxConcurrentStreams, 1)
}

// upstreamTLS checks an upstream's protocol and tls block.
func (v *checker) upstreamTLS(p string, u *Upstream) {
	if u == nil {
		return
	}
	switch {
	case !slices.Contains(upstreamProtocols, u.Protocol):
		v.addf(p+".protocol", "%s", unknownValue("protocol", u.Protocol, upstreamProtocols))
	case u.Protocol == ProtocolH2 && u.TLS == nil:
		v.addf(p+".protocol", "protocol h2 is HTTP/2 over TLS; add a tls block (tls: {} verifies with the system roots), or use h2c for cleartext HTTP/2")
	case u.Protocol == ProtocolH2C && u.TLS != nil:
		v.addf(p+".protocol", "protocol h2c is cleartext HTTP/2 and cannot use tls; use h2 for HTTP/2 over TLS, or remove the tls block")
	}
	t := u.TLS
	if t == nil {
		return
	}
	tp := p + ".tls"
	if t.CA != "" {
		if pem, err := os.ReadFile(t.CA); err != nil {
			v.addf(tp+".ca", "cannot read CA file %q: %s", t.CA, fileError(err))
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			v.addf(tp+".ca", "CA file %q holds no PEM certificate", t.CA)
		}
	}
	switch {
	case t.Cert != "" && t.Key == "":
		v.addf(tp+".key", "a client certificate needs its key; set key too, or remove cert")
	case t.Cert == "" && t.Key != "":
		v.addf(tp+".cert", "a client key needs its certificate; set cert too, or remove key")
	case t.Cert != "":
		v.keyPair(tp, t.Cert, t.Key, false)
	}
	if t.ServerName != "" && !validHostPort(t.ServerName) {
		v.addf(tp+".server_name", "invalid server name %q; want a host name", t.ServerName)
	}
}

// keyPair checks that a certificate and key file exist and load as a pair;
// p is the path of the object holding cert and key. required says that
// both must be set.
func (v *checker) keyPair(p, cert, key string, required bool) {
	ok := true
	for _, f := range []struct{ field, file, what string }{{"cert", cert, "certificate"}, {"key", key, "key"}} {
		if f.file == "" {
			if required {
				v.addf(p+"."+f.field, "%s is required: the path of a PEM %s file", f.field, f.what)
			}
			ok = false
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			v.addf(p+"."+f.field, "cannot read %s file %q: %s", f.what, f.file, fileError(err))
			ok = false
		}
	}
	if !ok {
		return
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		v.addf(p, "certificate %q and key %q do not load as a pair: %v", cert, key, err)
	}
}

// fileError is err without the path a *fs.PathError repeats.
func fileError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
