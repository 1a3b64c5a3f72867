package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// RetryOn is the set of failures a route retries, parsed from the config's
// retries.on list.
type RetryOn uint8

const (
	// RetryConnectFailure retries when the connection to the endpoint
	// failed, so the request was never sent: safe for every method.
	RetryConnectFailure RetryOn = 1 << iota
	// RetryReset retries idempotent requests when the connection was lost
	// after the request was sent and before a response head arrived.
	RetryReset
	// RetryTimeout retries idempotent requests whose try timed out.
	RetryTimeout
)

// DefaultRetryOn is what ParseRetryOn returns when retries.on is absent:
// connect failures and resets, as documented in config.Retries.
const DefaultRetryOn = RetryConnectFailure | RetryReset

// ParseRetryOn parses retries.on. A nil list (the key absent) yields
// DefaultRetryOn; an empty, non-nil list yields no conditions (status
// retries still apply).
func ParseRetryOn(names []string) (RetryOn, error) {
	if names == nil {
		return DefaultRetryOn, nil
	}
	var on RetryOn
	for _, name := range names {
		switch name {
		case "connect_failure":
			on |= RetryConnectFailure
		case "reset":
			on |= RetryReset
		case "timeout":
			on |= RetryTimeout
		default:
			return 0, fmt.Errorf("parse retry condition %q: want connect_failure, reset or timeout", name)
		}
	}
	return on, nil
}

// idempotent reports whether a request with method may be sent twice
// (RFC 9110 §9.2.2). POST and PATCH may not, nor may unknown methods.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// failKind says how one try failed, which decides whether it may be
// retried and how the endpoint's outlier detection counts it.
type failKind int

const (
	// failOther is any other upstream failure, such as a malformed
	// response; never retried.
	failOther failKind = iota
	// failClient is the client's doing (gone, bad body): not retried, not
	// held against the endpoint.
	failClient
	// failTimeout is the route's overall timeout: not retried, since the
	// time for every try is spent.
	failTimeout
	// failTryTimeout is one try's timeout.
	failTryTimeout
	// failConnect is a failure to connect: the request was never sent.
	failConnect
	// failReset is a connection lost after the request was (perhaps
	// partly) sent.
	failReset
)

// isConnectFailure reports whether err is a failure to establish the
// connection (refused, unreachable, DNS, connect timeout), so that no byte
// of the request reached the endpoint. http.Transport returns dial errors
// as a *net.OpError with Op "dial".
func isConnectFailure(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// isReset reports whether err is a connection lost mid-exchange: closed
// by the upstream before a response head (EOF) or reset.
func isReset(err error) bool {
	return errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}
