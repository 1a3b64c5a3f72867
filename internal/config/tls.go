package config

// Defaults and validation of listener TLS, HTTP/2 and upstream protocols.

func (l *Listener) applyTLSDefaults() {}

func (u *Upstream) applyTLSDefaults() {}

func (v *checker) listenerTLS(p string, l *Listener) {}

func (v *checker) upstreamTLS(p string, u *Upstream) {}
