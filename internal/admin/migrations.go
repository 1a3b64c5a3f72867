package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"torii/internal/migrate"
)

// The migrations API (docs/migration.md): every migrating route, one
// route's detail with its audit trail, its diff samples, and the
// operator's actions on its rollout.

func (s *server) migrations(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"migrations": s.Backend.Migrations()})
}

func (s *server) migration(w http.ResponseWriter, r *http.Request) {
	m, err := s.Backend.Migration(r.Context(), r.PathValue("route"))
	switch {
	case errors.Is(err, migrate.ErrNotMigrating):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, http.StatusOK, m)
	}
}

// samples answers GET /api/v1/migrations/{route}/samples?field=F&limit=N.
func (s *server) samples(w http.ResponseWriter, r *http.Request) {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "limit: want a number from 1 to 100, got "+quote(v))
			return
		}
		limit = n
	}
	route := r.PathValue("route")
	if !slices.ContainsFunc(s.Backend.Migrations(), func(m migrate.Migration) bool { return m.Route == route }) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("route %q: %v", route, migrate.ErrNotMigrating))
		return
	}
	ss, err := s.Backend.DiffSamples(r.Context(), route, r.URL.Query().Get("field"), limit)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "read diff samples: "+err.Error())
		return
	}
	if ss == nil {
		ss = []migrate.SampleRecord{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"samples": ss})
}

// migrationAction answers POST /api/v1/migrations/{route}/{action} where
// action is pause, resume, promote or abort. An optional JSON body gives
// {"reason": "...", "actor": "..."}; the actor is recorded in the audit
// trail as "admin:<actor>".
func (s *server) migrationAction(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
		Actor  string `json:"actor"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, `body: want nothing or {"reason": "...", "actor": "..."}: `+err.Error())
		return
	}
	actor := "admin"
	if a := sanitize(req.Actor, 64); a != "" {
		actor += ":" + a
	}
	st, err := s.Backend.MigrationAction(r.Context(), r.PathValue("route"), r.PathValue("action"), actor, sanitize(req.Reason, 500))
	switch {
	case errors.Is(err, migrate.ErrUnknownRoute):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, migrate.ErrInvalidAction):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.Logger.Info("rollout changed by an operator", "route", st.Route, "action", r.PathValue("action"), "actor", actor, "phase", st.Phase, "percent", st.Percent)
		writeJSON(w, http.StatusOK, st)
	}
}

// sanitize keeps printable text only, at most max bytes, for the audit
// trail and logs.
func sanitize(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	for len(s) > max {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
