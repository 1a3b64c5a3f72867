package upstream

import (
	"net/http"
	"sync"
)

// headerPool holds cleared header maps. The HTTP/1.1 transport reads
// response heads into them; the proxy builds upstream request heads in
// them and gives both kinds back once nothing can read them. A map costs
// two allocations (its header, then its first group of slots), so reuse
// saves both on every request.
var headerPool sync.Pool

// maxPooledFields is the most fields a header map may have held to be
// kept; a larger map is left to the garbage collector.
const maxPooledFields = 32

// NewHeader returns an empty header map: a recycled one when there is
// one, otherwise a new one sized for hint fields.
func NewHeader(hint int) http.Header {
	if h, ok := headerPool.Get().(http.Header); ok {
		return h
	}
	return make(http.Header, hint)
}

// RecycleHeader clears h and keeps it for NewHeader. Only a header no
// transport, handler or goroutine can read or write any more may be
// recycled: whoever had it sees it emptied and then refilled.
func RecycleHeader(h http.Header) {
	if h == nil || len(h) > maxPooledFields {
		return
	}
	clear(h)
	headerPool.Put(h)
}
