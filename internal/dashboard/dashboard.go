// Package dashboard is torii's web UI: one page of HTML, CSS and vanilla
// JavaScript embedded in the binary, with no build step and nothing fetched
// from elsewhere, so it works with no internet access. The page reads the
// admin JSON API (internal/admin) from the same origin every few seconds;
// this package serves only the files. docs/dashboard.md describes the
// views.
package dashboard

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is the path under which the page's assets are served; the page
// itself is served at "/".
const Prefix = "/ui/"

// ContentSecurityPolicy is sent with every file: scripts, styles, images
// and API calls from the admin listener itself only, no inline script or
// style, no framing, no forms posting elsewhere.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed ui
var files embed.FS

// Handler serves the embedded dashboard: index.html at "/" and the other
// files under Prefix. Mount it for GET / and GET Prefix.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "ui")
	if err != nil {
		panic(err) // "ui" is a literal, embedded above
	}
	return HandlerFS(sub)
}

// HandlerFS serves the dashboard from fsys, which holds index.html and
// its assets at its root: tests inject their own files, and a developer
// can serve the files from disk (os.DirFS) to edit them without
// rebuilding. A path that names no file, or a directory, is answered 404
// in JSON, like the admin API's unknown paths.
func HandlerFS(fsys fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
			if !ok || !fs.ValidPath(rest) {
				notFound(w)
				return
			}
			name = rest
		}
		ctype, ok := contentTypes[path.Ext(name)]
		if !ok {
			notFound(w)
			return
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			notFound(w)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	})
}

// contentTypes are the only file types served, fixed here rather than
// read from the system's MIME tables so every host answers alike.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte("{\n  \"error\": \"not found\",\n  \"status\": 404\n}\n"))
}
