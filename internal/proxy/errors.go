package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"torii/internal/request"
	"torii/internal/upstream"
)

// StatusClientClosedRequest is the status recorded, never sent, when the
// client went away before its response was ready (nginx's 499).
const StatusClientClosedRequest = 499

var (
	// ErrAtCapacity means every max_requests slot of the chosen upstream
	// was taken. Status maps it to 503.
	ErrAtCapacity = errors.New("upstream at capacity")
	// ErrTimeout means the route's timeout expired before a response head
	// arrived. It wraps context.DeadlineExceeded; Status maps it to 504.
	ErrTimeout = fmt.Errorf("route timeout expired: %w", context.DeadlineExceeded)
	// ErrTryTimeout means the route's try_timeout expired on one try. It
	// wraps context.DeadlineExceeded; Status maps it to 504.
	ErrTryTimeout = fmt.Errorf("try timeout expired: %w", context.DeadlineExceeded)
	// ErrClientGone means the client went away (its request context was
	// canceled). It wraps context.Canceled; Status maps it to 499.
	ErrClientGone = fmt.Errorf("client went away: %w", context.Canceled)
	// ErrRequestBody means the client's request body could not be read
	// (bad chunking, truncated). Status maps it to 400, or to 413 when the
	// error chain also holds an *http.MaxBytesError.
	ErrRequestBody = errors.New("bad request body")
	// ErrMethod means the method cannot be proxied (CONNECT). Status maps
	// it to 405.
	ErrMethod = errors.New("method not proxied")
	// ErrUpgrade means a protocol switch (RFC 9110 §7.8) failed: an
	// upstream answered 101 Switching Protocols to a request that asked
	// for no upgrade or switched to a protocol not asked for, the
	// upstream speaks HTTP/2 (which has no Upgrade), or the client's
	// connection could not be taken over. Status maps it to 502.
	ErrUpgrade = errors.New("unexpected protocol switch")
)

// Status returns the HTTP status for a failure to proxy: the one mapping
// of errors to statuses in torii.
//
//	client gone (context.Canceled)                    499, recorded only
//	timeouts (context.DeadlineExceeded, net timeouts)  504
//	upstream.ErrNoEndpoint, ErrAtCapacity              503
//	*http.MaxBytesError                                413
//	ErrRequestBody                                     400
//	ErrMethod                                          405
//	anything else                                      502
func Status(err error) int {
	status, _ := classify(err)
	return status
}

// classify is Status plus the short message the client sees. The message
// never carries the error's detail, which goes to the log only.
func classify(err error) (int, string) {
	var maxBytes *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return StatusClientClosedRequest, "client closed request"
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusGatewayTimeout, "upstream timed out"
	case errors.Is(err, upstream.ErrNoEndpoint):
		return http.StatusServiceUnavailable, "no healthy upstream"
	case errors.Is(err, ErrAtCapacity):
		return http.StatusServiceUnavailable, "upstream at capacity"
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge, "request body too large"
	case errors.Is(err, ErrRequestBody):
		return http.StatusBadRequest, "malformed request body"
	case errors.Is(err, ErrMethod):
		return http.StatusMethodNotAllowed, "method not allowed"
	default:
		return http.StatusBadGateway, "bad gateway"
	}
}

// errorBody is the JSON error response.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
	ID     string `json:"id"`
}

// WriteError answers r with status and a small JSON body,
// {"error": msg, "status": status, "id": "<request id>"}, not cached. The
// id is the request.Info's ID from r's context, which the access log
// prints beside the error's detail. msg must be short and must not carry
// internal detail. It records status in the request.Info; for
// StatusClientClosedRequest it writes nothing, as nobody is listening, and
// aborts the response (panic(http.ErrAbortHandler)) so net/http closes the
// connection rather than send an implicit 200.
func WriteError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	var id string
	if info := request.FromContext(r.Context()); info != nil {
		id = info.ID
		info.Status = status
	}
	if status == StatusClientClosedRequest {
		panic(http.ErrAbortHandler)
	}
	body, err := json.Marshal(errorBody{Error: msg, Status: status, ID: id})
	if err != nil { // cannot happen for strings and ints
		body = []byte(`{"error":"internal error"}`)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// fail records err in info, the Info in r's context, and answers with
// err's status and short message.
func fail(w http.ResponseWriter, r *http.Request, info *request.Info, err error) {
	status, msg := classify(err)
	info.Err = err
	WriteError(w, r, status, msg)
}
