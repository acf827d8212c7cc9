// Package api serves the statistics over HTTP: JSON over REST, read from a
// goka View of the processor's group table.
//
//	GET /api/stats          every enabled statistic: {"<name>": <result>, ...}
//	GET /api/stats/{name}   one statistic's result
//	GET /api/statistics     the enabled statistics with their descriptions
//	GET /api/ws             websocket: a snapshot of every statistic, then every change (see Hub)
//	GET /healthz            the process is up
//	GET /readyz             the view has recovered the table (503 until then)
//	GET /                   the live dashboard page (see dashboard.go)
//	GET /static/{file}      the dashboard's CSS and JavaScript, embedded in the binary
//	GET /images/{file}.jpg  the pictures, as the dashboard's thumbnails (ServeImages)
//
// Errors are JSON too: {"error": "..."} with the right status.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/gorilla/mux"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
)

// Table is where the API reads statistics from; a *goka.View of the group
// table is one.
type Table interface {
	Get(key string) (any, error)
	Recovered() bool
}

// Server answers HTTP requests for the enabled statistics.
type Server struct {
	kinds     []stats.Kind
	table     atomic.Pointer[Table] // nil until the view exists
	hub       *Hub
	publishMu sync.Mutex             // orders the publishes of Update and publishAll
	images    atomic.Pointer[string] // the pictures folder; nil until ServeImages
	logger    *slog.Logger
}

// New returns a server for the given statistics, with a websocket hub
// configured by hubOpts. It answers 503 on the statistics routes until
// SetTable has been given a recovered table; the hub's Run must run for
// websocket clients to get updates.
func New(kinds []stats.Kind, logger *slog.Logger, hubOpts ...HubOption) *Server {
	return &Server{kinds: kinds, logger: logger, hub: NewHub(append([]HubOption{WithHubLogger(logger)}, hubOpts...)...)}
}

// Hub returns the server's websocket hub.
func (s *Server) Hub() *Hub { return s.hub }

// kind returns the enabled statistic of that name.
func (s *Server) kind(name string) (stats.Kind, bool) {
	for _, k := range s.kinds {
		if k.Name == name {
			return k, true
		}
	}
	return stats.Kind{}, false
}

// Update is a goka View update callback (goka.WithViewCallback): it stores
// the table value as goka's default does, then publishes the statistic's
// new result to the websocket hub; nothing polls. While the View recovers
// it only stores: replaying a changelog would otherwise decode every old
// value, and publishAll gives the hub the recovered values at once.
func (s *Server) Update(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	if err := goka.DefaultUpdate(ctx, st, key, value); err != nil {
		return err
	}
	if _, ok := s.ready(); !ok {
		return nil
	}
	if k, ok := s.kind(key); ok {
		s.publishMu.Lock()
		defer s.publishMu.Unlock()
		s.publish(k, value)
	}
	return nil
}

// publishAll publishes every statistic's value in the table to the hub; the
// View's runner calls it each time the View has caught up. Holding
// publishMu, as Update does, keeps an older value read here from being
// published after a newer one that Update stored meanwhile.
func (s *Server) publishAll(t Table) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	for _, k := range s.kinds {
		v, err := t.Get(k.Name)
		if err != nil {
			s.logger.Error("table value not pushed to websocket clients", "stat", k.Name, "err", err)
			continue
		}
		if v != nil {
			s.publish(k, v)
		}
	}
}

// publish sends statistic k's result for a table value to the hub.
func (s *Server) publish(k stats.Kind, value any) {
	agg, err := processor.TableValue(k, value)
	if err == nil {
		var res []byte
		if res, err = json.Marshal(agg.Result()); err == nil {
			s.hub.Publish(k.Name, res)
			return
		}
	}
	s.logger.Error("table value not pushed to websocket clients", "stat", k.Name, "err", err) // REST answers the same error
}

// SetTable sets the table to read from.
func (s *Server) SetTable(t Table) { s.table.Store(&t) }

func (s *Server) ready() (Table, bool) {
	t := s.table.Load()
	if t == nil || !(*t).Recovered() {
		return nil, false
	}
	return *t, true
}

// Handler returns the HTTP routes.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/api/stats", s.all).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/api/stats/{name}", s.one).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/api/statistics", s.statistics).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/api/ws", s.hub).Methods(http.MethodGet)
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/", s.dashboard).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/static/").HandlerFunc(s.static).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s", r.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed, use GET", r.Method))
	})
	return s.withImages(r)
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if _, ok := s.ready(); !ok {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "recovering"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) statistics(w http.ResponseWriter, _ *http.Request) {
	type info struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		URL         string `json:"url"`
	}
	list := make([]info, len(s.kinds))
	for i, k := range s.kinds {
		list[i] = info{k.Name, k.Description, "/api/stats/" + k.Name}
	}
	writeJSON(w, http.StatusOK, map[string]any{"statistics": list})
}

func (s *Server) all(w http.ResponseWriter, _ *http.Request) {
	t, ok := s.ready()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "statistics are not ready yet: the view is still recovering the table")
		return
	}
	out := make(map[string]any, len(s.kinds))
	for _, k := range s.kinds {
		res, err := s.result(t, k)
		if err != nil {
			s.fail(w, err)
			return
		}
		out[k.Name] = res
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) one(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	kind, ok := s.kind(name)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{
			"error": fmt.Sprintf("unknown statistic %q", name),
			"known": stats.Names(s.kinds),
		})
		return
	}
	t, ok := s.ready()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "statistics are not ready yet: the view is still recovering the table")
		return
	}
	res, err := s.result(t, kind)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) result(t Table, k stats.Kind) (any, error) {
	v, err := t.Get(k.Name)
	if err != nil {
		return nil, fmt.Errorf("read %s from the table: %w", k.Name, err)
	}
	agg, err := processor.TableValue(k, v)
	if err != nil {
		return nil, err
	}
	return agg.Result(), nil
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	s.logger.Error("serving statistics", "err", err)
	status := http.StatusInternalServerError
	if errors.Is(err, stats.ErrVersion) {
		status = http.StatusConflict // state written by another version of picstats
	}
	writeError(w, status, err.Error())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may have gone; nothing to do about it
}
