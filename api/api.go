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
	"slices"
	"strings"
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
	byName    []int                    // indexes of kinds in name order, the order of /api/stats
	members   [][]byte                 // per kind: its name as a JSON object member, `"name":`
	rendered  []atomic.Pointer[[]byte] // per kind: JSON of its result for the table's current value; nil if not known
	table     atomic.Pointer[Table]    // nil until the view exists
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
	s := &Server{kinds: kinds, logger: logger, hub: NewHub(append([]HubOption{WithHubLogger(logger)}, hubOpts...)...),
		rendered: make([]atomic.Pointer[[]byte], len(kinds))}
	for i, k := range kinds {
		s.byName = append(s.byName, i)
		name, _ := json.Marshal(k.Name)
		s.members = append(s.members, append(name, ':'))
	}
	slices.SortFunc(s.byName, func(a, b int) int { return strings.Compare(kinds[a].Name, kinds[b].Name) })
	return s
}

// Hub returns the server's websocket hub.
func (s *Server) Hub() *Hub { return s.hub }

// kind returns the index in s.kinds of the enabled statistic of that name.
func (s *Server) kind(name string) (int, bool) {
	for i, k := range s.kinds {
		if k.Name == name {
			return i, true
		}
	}
	return 0, false
}

// Update is a goka View update callback (goka.WithViewCallback): it stores
// the table value as goka's default does, then publishes the statistic's
// new result to the websocket hub and keeps its JSON for REST; nothing
// polls, and a GET only copies bytes. While the View recovers it only
// stores (and forgets the JSON): replaying a changelog would otherwise
// decode every old value, and publishAll gives the hub the recovered values
// at once.
func (s *Server) Update(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	if err := goka.DefaultUpdate(ctx, st, key, value); err != nil {
		return err
	}
	i, ok := s.kind(key)
	if !ok {
		return nil
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	if _, ready := s.ready(); !ready {
		s.rendered[i].Store(nil) // REST renders from the table until publishAll
		return nil
	}
	s.publish(i, value)
	return nil
}

// publishAll publishes every statistic's value in the table to the hub; the
// View's runner calls it each time the View has caught up. Holding
// publishMu, as Update does, keeps an older value read here from being
// published after a newer one that Update stored meanwhile.
func (s *Server) publishAll(t Table) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	for i, k := range s.kinds {
		v, err := t.Get(k.Name)
		if err != nil {
			s.rendered[i].Store(nil)
			s.logger.Error("table value not pushed to websocket clients", "stat", k.Name, "err", err)
			continue
		}
		if v != nil {
			s.publish(i, v)
		}
	}
}

// publish sends statistic i's result for a table value to the hub and
// keeps its JSON for REST. The caller holds publishMu.
func (s *Server) publish(i int, value any) {
	k := s.kinds[i]
	agg, err := processor.TableValue(k, value)
	if err == nil {
		var res []byte
		if res, err = json.Marshal(agg.Result()); err == nil {
			s.rendered[i].Store(&res)
			s.hub.Publish(k.Name, res)
			return
		}
	}
	s.rendered[i].Store(nil)
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
	// The same bytes as encoding a map of the results: names in order.
	buf := make([]byte, 0, 16<<10)
	buf = append(buf, '{')
	for n, i := range s.byName {
		res, err := s.render(t, i)
		if err != nil {
			s.fail(w, err)
			return
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = append(append(buf, s.members[i]...), res...)
	}
	writeRaw(w, http.StatusOK, append(buf, '}'))
}

func (s *Server) one(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	i, ok := s.kind(name)
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
	res, err := s.render(t, i)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeRaw(w, http.StatusOK, res)
}

// render returns the JSON of statistic i's result: kept from the last
// publish if the table has not changed since, else read from the table.
func (s *Server) render(t Table, i int) ([]byte, error) {
	if res := s.rendered[i].Load(); res != nil {
		return *res, nil
	}
	k := s.kinds[i]
	v, err := t.Get(k.Name)
	if err != nil {
		return nil, fmt.Errorf("read %s from the table: %w", k.Name, err)
	}
	agg, err := processor.TableValue(k, v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(agg.Result())
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

// writeRaw writes JSON that is encoded already, with the newline that
// writeJSON's encoder ends with. body may be shared: it is not modified.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client may have gone; nothing to do about it
	_, _ = w.Write(newline)
}

var newline = []byte{'\n'}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may have gone; nothing to do about it
}
