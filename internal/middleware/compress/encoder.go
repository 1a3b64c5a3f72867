package compress

import (
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"torii/internal/config"
)

// Compression levels: each is about as fast as the others can be while
// still shrinking text well, so that compressing costs a gateway little
// CPU per byte. They are fixed: a route chooses which codings to offer,
// not how hard to work.
const (
	gzipLevel   = 5 // klauspost/compress gzip; 1 (fastest) to 9
	brotliLevel = 4 // 0 to 11; above 5 slows sharply for little gain
	// brotliWindowBits and zstdWindow bound the memory of each pooled
	// encoder and of the client's decoder: 1 MiB, against brotli's
	// default of 4 MiB and zstd's of 8 MiB. Web responses gain little
	// from longer back-references.
	brotliWindowBits = 20
	// RFC 8878 §3.1.1.1.2 asks HTTP zstd decoders to support windows of
	// at least 8 MiB, so any value up to that is safe.
	zstdWindow = 1 << 20
)

// encoder is a pooled compressor. Reset points it at a new destination
// and starts a new stream; Flush sends everything written so far as a
// complete, decodable block; Close ends the stream.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

// algorithm is one content coding and the pool of its encoders. Every
// encoder of a pool has the same settings, so any middleware may reuse
// any of them.
type algorithm struct {
	name string // the content-coding token, e.g. "br"
	pool sync.Pool
}

// get returns an encoder writing a new stream to dst.
func (a *algorithm) get(dst io.Writer) encoder {
	e := a.pool.Get().(encoder)
	e.Reset(dst)
	return e
}

// put returns e to the pool. It must be closed, or abandoned mid-stream;
// Reset drops its reference to the old destination.
func (a *algorithm) put(e encoder) {
	e.Reset(io.Discard)
	a.pool.Put(e)
}

// zstdOptions are the settings of every pooled zstd encoder: one
// goroutine (the request's own; the library starts none with
// concurrency 1) and a small window.
var zstdOptions = []zstd.EOption{
	zstd.WithEncoderLevel(zstd.SpeedDefault),
	zstd.WithEncoderConcurrency(1),
	zstd.WithLowerEncoderMem(true),
	zstd.WithWindowSize(zstdWindow),
}

// algorithms are the supported codings by name.
var algorithms = map[string]*algorithm{
	config.CompressGzip: {name: config.CompressGzip, pool: sync.Pool{New: func() any {
		w, err := gzip.NewWriterLevel(io.Discard, gzipLevel)
		if err != nil {
			panic("compress: gzip level: " + err.Error()) // a constant above
		}
		return w
	}}},
	config.CompressBrotli: {name: config.CompressBrotli, pool: sync.Pool{New: func() any {
		return brotli.NewWriterOptions(io.Discard, brotli.WriterOptions{Quality: brotliLevel, LGWin: brotliWindowBits})
	}}},
	config.CompressZstd: {name: config.CompressZstd, pool: sync.Pool{New: func() any {
		w, err := zstd.NewWriter(nil, zstdOptions...)
		if err != nil {
			panic("compress: zstd options: " + err.Error()) // constants above
		}
		return w
	}}},
}

// Compile-time checks that each library writer is an encoder.
var (
	_ encoder = (*gzip.Writer)(nil)
	_ encoder = (*brotli.Writer)(nil)
	_ encoder = (*zstd.Encoder)(nil)
)
