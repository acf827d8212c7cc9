// Package api serves the statistics over HTTP: JSON over REST, read from a
// goka View of the processor's group table.
//
//	GET /api/stats          every enabled statistic: {"<name>": <result>, ...}
//	GET /api/stats/{name}   one statistic's result; with ?from=&to= over that time range (windows.go)
//	GET /api/stats/{name}/windows?size=  every window of that size kept, with its result (windows.go)
//	GET /api/statistics     the enabled statistics with their descriptions
//	GET /api/ws             websocket: a snapshot of every statistic, then every change (see package hub); time ranges and window lists by subscription (topics.go)
//	GET /api/openapi.json   the OpenAPI 3.1 description of every route and answer (openapi.go)
//	GET /healthz            the serving loop makes progress (503 when it is wedged)
//	GET /readyz             the view is current: recovered, and caught up with the table within --stale-after (503 otherwise)
//	GET /metrics            Prometheus metrics, with WithMetrics (metrics.go)
//	GET /                   the live dashboard page (see dashboard.go)
//	GET /static/{file}      the dashboard's CSS and JavaScript, embedded in the binary
//	GET /images/{file}.jpg  the pictures, as the dashboard's thumbnails (ServeImages)
//
// Errors are JSON too: {"error": "..."} with the right status. Every
// statistics answer and /readyz say how fresh the values are, in the headers
// Picstats-View-Position, Picstats-View-Lag and Picstats-Data-Age (see
// setFreshness).
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/picstats/picstats/hub"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

// Table is where the API reads statistics from; a *goka.View of the group
// table is one.
type Table interface {
	Get(key string) (any, error)
	Recovered() bool
}

// Server answers HTTP requests for the enabled statistics.
type Server struct {
	kinds      []stats.Kind
	byName     []int                    // indexes of kinds in name order, the order of /api/stats
	members    [][]byte                 // per kind: its name as a JSON object member, `"name":`
	rendered   []atomic.Pointer[[]byte] // per kind: JSON of its result for the table's current value; nil if not known
	updates    []atomic.Uint64          // per kind: Update calls so far, to tell publishAll a value is already published
	table      atomic.Pointer[Table]    // nil until the view exists
	live       atomic.Bool              // the View has recovered once: Update publishes, REST serves
	published  atomic.Bool              // and publishAll has given the hub every value once: /readyz may say ready
	fresh      freshness
	publishing atomic.Int64 // when the running publishAll started (unix ns), 0 if none runs
	hub        *hub.Hub
	publishMu  sync.Mutex             // orders the publishes of Update and publishAll
	images     atomic.Pointer[string] // the pictures folder; nil until ServeImages
	logger     *slog.Logger

	staleAfter     time.Duration
	wedgedAfter    time.Duration
	sampleInterval time.Duration
	maxOnDemand    int // MaxOnDemandTopics
	hubOpts        []hub.Option

	metricsReg    prometheus.Registerer // WithMetrics; nil: no metrics (metrics.go)
	metricsGather prometheus.Gatherer
	http          *httpMetrics
	requests      atomic.Int64              // answered so far, for the progress line
	valuesBehind  atomic.Int64              // table values the View kept out (table.Join)
	windowed      map[string][]windowedKind // statistic name → its windowed forms, smallest first (WithWindows)
	kprom         *kprom.Metrics
}

// Option configures a Server.
type Option func(*Server)

// WithHubOptions configures the server's websocket hub.
func WithHubOptions(opts ...hub.Option) Option {
	return func(s *Server) { s.hubOpts = append(s.hubOpts, opts...) }
}

// WithStaleAfter sets how old the values may be — the time since the View
// was last seen caught up with the table — before /readyz answers 503
// (default DefaultStaleAfter).
func WithStaleAfter(d time.Duration) Option { return func(s *Server) { s.staleAfter = d } }

// WithWedgedAfter sets how long an update of the View, the publishing of
// the recovered table or the websocket hub's flush may be stuck before
// /healthz answers 503 (default DefaultWedgedAfter).
func WithWedgedAfter(d time.Duration) Option { return func(s *Server) { s.wedgedAfter = d } }

// withSampleInterval sets how often RunView asks the broker for the
// table's end offsets (default a second); for tests.
func withSampleInterval(d time.Duration) Option { return func(s *Server) { s.sampleInterval = d } }

// Defaults of the options.
const (
	DefaultStaleAfter  = 3 * time.Second
	DefaultWedgedAfter = 30 * time.Second
)

// New returns a server for the given statistics. It answers 503 on the
// statistics routes until the View has recovered the table (see RunView,
// or SetTable and MarkRecovered); the hub's Run must run for websocket
// clients to get updates.
func New(kinds []stats.Kind, logger *slog.Logger, opts ...Option) *Server {
	s := &Server{kinds: kinds, logger: logger,
		rendered:   make([]atomic.Pointer[[]byte], len(kinds)),
		updates:    make([]atomic.Uint64, len(kinds)),
		staleAfter: DefaultStaleAfter, wedgedAfter: DefaultWedgedAfter, sampleInterval: time.Second, maxOnDemand: MaxOnDemandTopics}
	for _, o := range opts {
		o(s)
	}
	s.hub = hub.New(append([]hub.Option{hub.WithLogger(logger), hub.WithSubscriptions(s)}, s.hubOpts...)...)
	s.setUpMetrics()
	for i, k := range kinds {
		s.byName = append(s.byName, i)
		name, _ := json.Marshal(k.Name)
		s.members = append(s.members, append(name, ':'))
	}
	slices.SortFunc(s.byName, func(a, b int) int { return strings.Compare(kinds[a].Name, kinds[b].Name) })
	return s
}

// Hub returns the server's websocket hub.
func (s *Server) Hub() *hub.Hub { return s.hub }

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
// the join of the stored and the incoming table value (table.Join: a late
// write of an old owner of the table partition never takes a statistic
// back), records how far the View has read, then publishes the statistic's
// new result to the websocket hub and keeps its JSON for REST; nothing
// polls, and a GET only copies bytes.
// Until the View has recovered it only stores (and forgets the JSON):
// replaying a changelog would otherwise decode every old value, and
// publishAll gives the hub the recovered values at once.
//
// It runs on the View's goroutines, so it calls nothing of goka's but the
// storage it is given, and holds publishMu only around the hub and the
// rendered JSON.
func (s *Server) Update(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	done := s.fresh.busy(ctx.Partition())
	defer done()
	stored, err := st.Get(key)
	if err != nil {
		return err
	}
	keep, behind, err := table.Join(stored, value)
	if err != nil {
		// Kept as goka would; rendering it says what is wrong with it.
		s.logger.Error("table value not joined with the one kept", "stat", key, "err", err)
	}
	if behind {
		s.valuesBehind.Add(1)
	}
	if err := goka.DefaultUpdate(ctx, st, key, keep); err != nil {
		return err
	}
	defer s.fresh.applied(ctx.Partition(), ctx.Offset())
	i, ok := s.kind(key)
	if !ok || (behind && bytes.Equal(keep, stored)) { // nothing new to publish
		return nil
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.updates[i].Add(1)
	if !s.live.Load() {
		s.rendered[i].Store(nil) // REST renders from the table until publishAll
		return nil
	}
	s.publish(i, keep)
	return nil
}

// publishAll publishes every statistic's value in the table to the hub; the
// View's runner calls it each time the View has caught up (see follow). It
// reads the table without holding publishMu, so that no goka call waits
// while Update callbacks wait for it, and publishes what it read only if
// no Update of that statistic came meanwhile: that Update published a value
// at least as new.
func (s *Server) publishAll(t Table) {
	s.publishing.Store(time.Now().UnixNano())
	defer s.publishing.Store(0)
	for i, k := range s.kinds {
		seen := s.updates[i].Load()
		v, err := t.Get(k.Name)
		s.publishMu.Lock()
		switch {
		case s.updates[i].Load() != seen:
		case err != nil:
			s.rendered[i].Store(nil)
			s.logger.Error("table value not pushed to websocket clients", "stat", k.Name, "err", err)
		case v != nil:
			s.publish(i, v)
		}
		s.publishMu.Unlock()
	}
}

// publish sends statistic i's result for a table value to the hub and
// keeps its JSON for REST. The caller holds publishMu.
func (s *Server) publish(i int, value any) {
	k := s.kinds[i]
	agg, err := table.Aggregate(k, value)
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

// SetTable sets the table to read from. RunView sets the View.
func (s *Server) SetTable(t Table) { s.table.Store(&t) }

// MarkRecovered tells the server that its table has recovered and its
// values are published: from now on Update publishes, REST serves and
// /readyz may answer 200. Tests of the routes call it; RunView (through
// follow) marks the two steps apart, publishing in between.
func (s *Server) MarkRecovered() { s.live.Store(true); s.published.Store(true) }

// serving returns the table once it has recovered: REST serves it from then
// on, current or not, and says how fresh it is in the headers.
func (s *Server) serving() (Table, bool) {
	t := s.table.Load()
	if t == nil || !s.live.Load() {
		return nil, false
	}
	return *t, true
}

// readiness is what /readyz answers.
type readiness struct {
	Status     string   `json:"status"` // ready, recovering or stale
	Reason     string   `json:"reason,omitempty"`
	Lag        int64    `json:"view_lag"`                   // table records not applied at the last check
	AgeSeconds *float64 `json:"data_age_seconds,omitempty"` // since the values were last known current
}

func (s *Server) readiness(st status) (readiness, bool) {
	r := readiness{Lag: st.lag}
	if st.known {
		age := st.age.Seconds()
		r.AgeSeconds = &age
	}
	t := s.table.Load()
	switch {
	case t == nil || !s.live.Load() || !s.published.Load():
		// Not ready before publishAll: a websocket client's snapshot
		// would lack the recovered values.
		r.Status, r.Reason = "recovering", "the view is recovering the table"
	case !(*t).Recovered():
		r.Status, r.Reason = "stale", "the view is reconnecting to the broker"
	case !st.known:
		r.Status, r.Reason = "stale", "the view has not yet been seen caught up with the table's end offsets"
	case st.age > s.staleAfter:
		r.Status, r.Reason = "stale", fmt.Sprintf("the view was last seen caught up with the table %.1fs ago (limit %v): it is behind or cannot reach the broker", st.age.Seconds(), s.staleAfter)
	default:
		r.Status = "ready"
		return r, true
	}
	return r, false
}

// setFreshness sets the headers that say how fresh the served values are:
//
//	Picstats-View-Position  sum over the table's partitions of the next offset the View will apply
//	Picstats-View-Lag       table records the View had not applied at the last check of the end offsets
//	Picstats-Data-Age       seconds since the values were last known current (absent until the first check)
func setFreshness(h http.Header, st status) {
	h.Set("Picstats-View-Position", strconv.FormatInt(st.position, 10))
	h.Set("Picstats-View-Lag", strconv.FormatInt(st.lag, 10))
	if st.known {
		h.Set("Picstats-Data-Age", strconv.FormatFloat(st.age.Seconds(), 'f', 3, 64))
	}
}

// wedged returns why the serving loop makes no progress, or "" if it does.
func (s *Server) wedged(now time.Time) string {
	if d := s.fresh.oldestBusy(now); d > s.wedgedAfter {
		return fmt.Sprintf("an update of the view has run for %v", d.Round(time.Millisecond))
	}
	if since := s.publishing.Load(); since != 0 {
		if d := now.Sub(time.Unix(0, since)); d > s.wedgedAfter {
			return fmt.Sprintf("publishing the recovered table has run for %v", d.Round(time.Millisecond))
		}
	}
	if d := s.hub.Stalled(); d > s.wedgedAfter {
		return fmt.Sprintf("websocket updates have waited %v for the hub", d.Round(time.Millisecond))
	}
	return ""
}

// Handler returns the HTTP routes.
func (s *Server) Handler() http.Handler {
	r := s.router()
	s.initRouteMetrics(r) // metrics.go
	return s.instrument(s.withImages(r))
}

// router returns the routes but /images/ (see withImages); each is in
// openapi.json, and TestOpenAPIDescribesEveryRoute walks them.
func (s *Server) router() *mux.Router {
	// SkipClean: a path with "..", "." or "//" in it is a 404 (or the
	// statistic "..", unknown) like any other path no route has, not a
	// 301 to its cleaned form, which the API does not describe.
	r := mux.NewRouter().SkipClean(true)
	r.Use(routeLabel) // the route label of the request metrics (metrics.go)
	if s.metricsGather != nil {
		r.Handle("/metrics", s.metricsHandler()).Methods(http.MethodGet, http.MethodHead)
	}
	r.HandleFunc("/api/stats", s.all).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/api/stats/{name}", s.one).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/api/stats/{name}/windows", s.windows).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/api/statistics", s.statistics).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc(openAPIPath, s.openAPI).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/api/ws", s.hub).Methods(http.MethodGet)
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/", s.dashboard).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/static/").HandlerFunc(s.static).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s", r.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", allowed(r, req)) // GET, HEAD; GET alone for /api/ws
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed, use GET", req.Method))
	})
	return r
}

// allowed returns the methods r has a route for at req's path, for the
// Allow header of a 405.
func allowed(r *mux.Router, req *http.Request) string {
	var methods []string
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		probe := req.Clone(req.Context())
		probe.Method = m
		var match mux.RouteMatch
		if r.Match(probe, &match) && match.MatchErr == nil {
			methods = append(methods, m)
		}
	}
	return strings.Join(methods, ", ")
}

// healthz is the liveness probe: 503 when the serving loop is wedged, so
// that a restart policy acts; a broker that is away is not a reason.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if why := s.wedged(time.Now()); why != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "wedged", "reason": why})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is the readiness probe: 200 only while the values are current.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	st := s.fresh.status(time.Now())
	setFreshness(w.Header(), st)
	r, ok := s.readiness(st)
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, r)
}

func (s *Server) statistics(w http.ResponseWriter, _ *http.Request) {
	type info struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		URL         string   `json:"url"`
		Windows     []string `json:"windows"` // sizes of /api/stats/{name}/windows?size= and time ranges
	}
	list := make([]info, len(s.kinds))
	for i, k := range s.kinds {
		list[i] = info{k.Name, k.Description, "/api/stats/" + k.Name, s.windowLabels(k.Name)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"statistics": list})
}

// notRecovered is the answer of the statistics routes before the View has
// recovered the table.
const notRecovered = "statistics are not ready yet: the view is still recovering the table"

func (s *Server) all(w http.ResponseWriter, _ *http.Request) {
	t, ok := s.serving()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, notRecovered)
		return
	}
	setFreshness(w.Header(), s.fresh.status(time.Now()))
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

// unknown answers a request for a statistic that is not enabled.
func (s *Server) unknown(w http.ResponseWriter, name string) {
	writeJSON(w, http.StatusNotFound, map[string]any{
		"error": fmt.Sprintf("unknown statistic %q", name),
		"known": stats.Names(s.kinds),
	})
}

func (s *Server) one(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	i, ok := s.kind(name)
	if !ok {
		s.unknown(w, name)
		return
	}
	t, ok := s.serving()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, notRecovered)
		return
	}
	setFreshness(w.Header(), s.fresh.status(time.Now()))
	if q := r.URL.Query(); q.Has("from") || q.Has("to") {
		s.rangeAnswer(t, name, q, time.Now()).write(w) // windows.go
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
	agg, err := table.Aggregate(k, v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(agg.Result())
}

func (s *Server) fail(w http.ResponseWriter, err error) { s.failed(err).write(w) }

// failed is the answer to a table value that cannot be served.
func (s *Server) failed(err error) answer {
	s.logger.Error("serving statistics", "err", err)
	status := http.StatusInternalServerError
	if errors.Is(err, stats.ErrVersion) {
		status = http.StatusConflict // state written by another version of picstats
	}
	return answer{status, map[string]string{"error": err.Error()}}
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
