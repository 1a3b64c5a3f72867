package dashboard

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// TestHandler: the page at /, its files under Prefix with fixed content
// types and the CSP, and a JSON 404 for anything else, directories and
// unknown types included.
func TestHandler(t *testing.T) {
	h := HandlerFS(fstest.MapFS{
		"index.html":     {Data: []byte("<!doctype html>page")},
		"app.js":         {Data: []byte("js")},
		"sub/x.css":      {Data: []byte("css")},
		"notes.txt":      {Data: []byte("not served")},
		"dir/index.html": {Data: []byte("nested")},
	})
	tests := []struct {
		name, path, wantType, wantBody string
		wantStatus                     int
	}{
		{"page", "/", "text/html; charset=utf-8", "page", 200},
		{"script", "/ui/app.js", "text/javascript; charset=utf-8", "js", 200},
		{"nested", "/ui/sub/x.css", "text/css; charset=utf-8", "css", 200},
		{"unknown type", "/ui/notes.txt", "application/json", `"not found"`, 404},
		{"missing", "/ui/nope.js", "application/json", `"not found"`, 404},
		{"prefix itself", "/ui/", "application/json", `"not found"`, 404},
		{"directory", "/ui/dir", "application/json", `"not found"`, 404},
		{"dot segments", "/ui/../index.html", "application/json", `"not found"`, 404},
		{"outside the prefix", "/app.js", "application/json", `"not found"`, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/", nil)
			req.URL.Path = tc.path // unclean on purpose: the mux would have cleaned it
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("GET %s: got %d, want %d", tc.path, rec.Code, tc.wantStatus)
			}
			if got := rec.Header().Get("Content-Type"); got != tc.wantType {
				t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.wantType)
			}
			if !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("GET %s: body %q, want it to contain %q", tc.path, rec.Body, tc.wantBody)
			}
			if tc.wantStatus == http.StatusOK && rec.Header().Get("Content-Security-Policy") != ContentSecurityPolicy {
				t.Errorf("GET %s: no Content-Security-Policy", tc.path)
			}
		})
	}
}

// TestEmbeddedPageSelfContained: the embedded page works under its CSP and
// with no internet: no inline script, style or event handler, nothing
// loaded from another origin, and every file it names is embedded.
func TestEmbeddedPageSelfContained(t *testing.T) {
	sub, err := fs.Sub(files, "ui")
	if err != nil {
		t.Fatal(err)
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(index)
	for _, tc := range []struct{ name, pattern string }{
		{"inline script", `<script[^>]*>\s*[^<\s]`},
		{"style element", `<style`},
		{"style attribute", `\sstyle=`},
		{"event handler attribute", `\son[a-z]+=`},
		{"javascript: URL", `javascript:`},
		{"absolute URL", `(?:src|href)="(?:https?:)?//`},
	} {
		if loc := regexp.MustCompile(tc.pattern).FindStringIndex(page); loc != nil {
			t.Errorf("index.html has an %s: %q", tc.name, page[loc[0]:min(loc[1]+40, len(page))])
		}
	}
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="/ui/`) {
			t.Errorf("index.html has a script that is not an embedded file: %s", tag)
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="/ui/([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html names %d files under /ui/, want the script, the style and the icon", len(refs))
	}
	for _, ref := range refs {
		if _, err := fs.Stat(sub, ref[1]); err != nil {
			t.Errorf("index.html names /ui/%s, which is not embedded: %v", ref[1], err)
		}
	}
	// The script builds the page with DOM calls, never from HTML strings,
	// and evaluates nothing.
	js, err := fs.ReadFile(sub, "app.js")
	if err != nil {
		t.Fatal(err)
	}
	code := strings.ReplaceAll(string(js), "'http://www.w3.org/2000/svg'", "SVG namespace")
	for _, bad := range []string{`(?:inner|outer)HTML\s*\+?=[^=]`, `insertAdjacentHTML`, `document\.write`, `\beval\(`, `new Function`, `https?://`} {
		if loc := regexp.MustCompile(bad).FindStringIndex(code); loc != nil {
			t.Errorf("app.js: %q matches %s", code[loc[0]:loc[1]], bad)
		}
	}
}
