package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"torii/internal/listener"
)

// maxReplayBody is the largest request body buffered so that a retry can
// send it again, in bytes. Larger bodies are streamed and only retried if
// no byte of them was read.
const maxReplayBody = 64 << 10

// body is the request body as the tries see it: none, buffered whole (so
// any try can send it), re-obtainable through GetBody, or streamed once.
type body struct {
	none     bool
	buffered bool
	buf      []byte
	getBody  func() (io.ReadCloser, error)
	stream   *trackedReader
	length   int64 // Content-Length to send; -1 unknown (chunked)
}

// prepareBody decides how r's body is sent. It buffers the body only when
// replay bodies may be needed (replay) and it is small enough; reading it
// may fail on the client's side.
func prepareBody(r *http.Request, replay bool) (body, error) {
	switch {
	case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
		// For server requests a zero ContentLength means no body.
		return body{none: true}, nil
	case r.GetBody != nil:
		return body{getBody: r.GetBody, length: r.ContentLength}, nil
	case !replay || r.ContentLength > maxReplayBody:
		return body{stream: &trackedReader{r: r.Body}, length: r.ContentLength}, nil
	}
	if r.ContentLength > 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return body{}, bodyError(r, err)
		}
		return body{buffered: true, buf: buf, length: r.ContentLength}, nil
	}
	// Unknown length (chunked): read one byte past the limit to learn
	// whether the body fits.
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(r.Body, maxReplayBody+1)); err != nil {
		return body{}, bodyError(r, err)
	}
	if b.Len() <= maxReplayBody {
		// Keep chunked framing: the client's trailers, now read into
		// r.Trailer, are sent after the body.
		return body{buffered: true, buf: b.Bytes(), length: -1}, nil
	}
	// Too big: send what was read, then the rest as it comes. The stream
	// counts as read, so it is never replayed.
	t := &trackedReader{r: io.MultiReader(bytes.NewReader(b.Bytes()), r.Body)}
	t.read.Store(true)
	return body{stream: t, length: -1}, nil
}

// bodyError wraps a failure to read r's body: the client going away, or
// ErrRequestBody.
func bodyError(r *http.Request, err error) error {
	if r.Context().Err() != nil && !isFraming(err) {
		return fmt.Errorf("read request body: %w (%v)", ErrClientGone, err)
	}
	return fmt.Errorf("read request body: %w: %w", ErrRequestBody, err)
}

// isFraming reports whether err is the strict framing check refusing the
// body (internal/listener), as opposed to the client going away.
func isFraming(err error) bool {
	var fe *listener.FramingError
	return errors.As(err, &fe)
}

// replayable reports whether a new try can send the whole body.
func (b *body) replayable() bool {
	switch {
	case b.none, b.buffered, b.getBody != nil:
		return true
	default:
		return !b.stream.read.Load()
	}
}

// reader returns the body for one try, and the request's GetBody.
func (b *body) reader() (io.ReadCloser, func() (io.ReadCloser, error), error) {
	switch {
	case b.none:
		return nil, nil, nil
	case b.buffered:
		// GetBody lets http.Transport resend the body itself when a
		// kept-alive connection turns out to be dead.
		get := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.buf)), nil }
		rc, _ := get()
		return rc, get, nil
	case b.getBody != nil:
		rc, err := b.getBody()
		if err != nil {
			return nil, nil, fmt.Errorf("get request body: %w", err)
		}
		return rc, b.getBody, nil
	default:
		return b.stream, nil, nil
	}
}

// readErr returns the error the client's body gave while streaming, if
// any: the client's fault, not the upstream's.
func (b *body) readErr() error {
	if b.stream == nil {
		return nil
	}
	return b.stream.err()
}

// trackedReader streams the client's body to the upstream. It notes
// whether it was read at all (then it cannot be replayed) and any read
// error (the client's, not the upstream's). Close does nothing: the
// transport closes request bodies even when it failed before sending, and
// a body never sent must stay intact for the next try; net/http closes the
// real body after the handler returns.
type trackedReader struct {
	r    io.Reader
	read atomic.Bool

	mu      sync.Mutex // guards readErr; the transport reads on its own goroutine
	readErr error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	t.read.Store(true)
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, context.Canceled) {
		t.mu.Lock()
		if t.readErr == nil {
			t.readErr = err
		}
		t.mu.Unlock()
	}
	return n, err
}

func (t *trackedReader) Close() error { return nil }

func (t *trackedReader) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.readErr
}
