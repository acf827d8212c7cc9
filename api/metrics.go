package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/picstats/picstats/hub"
)

// WithMetrics registers the server's metrics on reg (README, "Metrics"):
// HTTP requests by route template and status with their duration, the
// View's lag per table partition, its state and data age, the websocket
// hub's clients, messages and drops, and the franz-go client metrics of the
// end-offset sampler (kprom). If gather is not nil, GET /metrics serves it
// (in role all, one registry holds every role's metrics).
func WithMetrics(reg prometheus.Registerer, gather prometheus.Gatherer) Option {
	return func(s *Server) { s.metricsReg, s.metricsGather = reg, gather }
}

// httpMetrics count the API's requests.
type httpMetrics struct {
	requests *prometheus.CounterVec   // route, method, code
	duration *prometheus.HistogramVec // route
}

// unmatchedRoute is the route label of requests no route matched (404, and
// 405 for a known path with another method).
const unmatchedRoute = "unmatched"

// imagesRoute is the route label of the pictures, served beside the router.
const imagesRoute = "/images/{file}"

// setUpMetrics creates and registers the metrics; New calls it.
func (s *Server) setUpMetrics() {
	if s.metricsReg == nil {
		return
	}
	s.http = &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "picstats_http_requests_total",
			Help: "HTTP requests answered by the API, by route template, method and status code (101 for a websocket upgrade of /api/ws, counted when it happens)."},
			[]string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "picstats_http_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer (to the upgrade for /api/ws), by route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
			[]string{"route"}),
	}
	s.metricsReg.MustRegister(s.http.requests, s.http.duration, viewCollector{s}, hubCollector{s.hub})
	s.kprom = kprom.NewMetrics("picstats", kprom.Subsystem("kafka_api_sampler"), kprom.Registerer(s.metricsReg))
}

// clientOpts are the options of the API's franz-go client (the end-offset
// sampler): its metrics, if exported.
func (s *Server) clientOpts() []kgo.Opt {
	if s.kprom == nil {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(s.kprom)}
}

// metricsHandler serves the registry given to WithMetrics.
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metricsGather, promhttp.HandlerOpts{ErrorLog: slogErrorLog{s}})
}

type slogErrorLog struct{ s *Server }

func (l slogErrorLog) Println(v ...any) { l.s.logger.Error("serving /metrics", "err", v) }

// instrument counts every request h answers, whatever its route.
func (s *Server) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, s: s, method: r.Method, route: unmatchedRoute, start: time.Now()}
		h.ServeHTTP(rec, r)
		rec.observe()
	})
}

// initRouteMetrics makes every route's GET 200 series exist from the
// start, at 0, so that /metrics lists each route before its first request
// (and rate() sees the first one).
func (s *Server) initRouteMetrics(r *mux.Router) {
	if s.http == nil {
		return
	}
	routes := []string{imagesRoute}
	_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if tpl, err := route.GetPathTemplate(); err == nil {
			routes = append(routes, tpl)
		}
		return nil
	})
	for _, tpl := range routes {
		code := "200"
		if tpl == websocketPath {
			code = "101"
		}
		s.http.requests.WithLabelValues(tpl, http.MethodGet, code)
		s.http.duration.WithLabelValues(tpl)
	}
}

// routeLabel is a mux middleware: it gives the request's recorder the
// matched route's path template.
func routeLabel(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec, ok := w.(*recorder); ok {
			if route := mux.CurrentRoute(r); route != nil {
				if tpl, err := route.GetPathTemplate(); err == nil {
					rec.route = tpl
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// recorder remembers a request's status for the metrics.
type recorder struct {
	http.ResponseWriter
	s        *Server
	method   string
	route    string
	start    time.Time
	code     int
	observed bool
}

func (r *recorder) observe() {
	if r.observed {
		return
	}
	r.observed = true
	r.s.requests.Add(1)
	if r.s.http == nil {
		return
	}
	code := r.code
	if code == 0 {
		code = http.StatusOK // nothing written: net/http answers 200
	}
	method := r.method
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions:
	default:
		method = "other" // bounded: a client may send any token
	}
	// The duration first: whoever sees the request counted sees its duration too.
	r.s.http.duration.WithLabelValues(r.route).Observe(time.Since(r.start).Seconds())
	r.s.http.requests.WithLabelValues(r.route, method, strconv.Itoa(code)).Inc()
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// ReadFrom keeps sendfile for pictures.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(r.ResponseWriter, src)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack is the websocket upgrade: the request is counted now, with 101,
// since its handler runs as long as the connection.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.ErrUnsupported
	}
	c, rw, err := hj.Hijack()
	if err == nil {
		r.code = http.StatusSwitchingProtocols
		r.observe()
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// viewCollector exports how current the View is, at scrape time.
type viewCollector struct{ s *Server }

var (
	viewLagDesc = prometheus.NewDesc("picstats_view_lag_records",
		"Records of a table partition the API's View had not applied at the last check of the table's end offsets.", []string{"partition"}, nil)
	viewStateDesc = prometheus.NewDesc("picstats_view_state",
		"The View's state as /readyz judges it: 1 for the current state (recovering, stale or ready), 0 for the others.", []string{"state"}, nil)
	viewAgeDesc = prometheus.NewDesc("picstats_view_data_age_seconds",
		"Seconds since the served values were last known current (absent until the first check).", nil, nil)
	viewBehindDesc = prometheus.NewDesc("picstats_view_values_behind_total",
		"Table values the View read that were behind the value it kept for some input partition (a late write of an old owner of the table partition), and kept out.", nil, nil)
)

func (c viewCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- viewLagDesc
	ch <- viewStateDesc
	ch <- viewAgeDesc
	ch <- viewBehindDesc
}

func (c viewCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.fresh.status(time.Now())
	for p, lag := range c.s.fresh.partitionLags() {
		ch <- prometheus.MustNewConstMetric(viewLagDesc, prometheus.GaugeValue, float64(lag), strconv.Itoa(p))
	}
	r, _ := c.s.readiness(st)
	for _, state := range []string{"recovering", "stale", "ready"} {
		v := 0.0
		if r.Status == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(viewStateDesc, prometheus.GaugeValue, v, state)
	}
	if st.known {
		ch <- prometheus.MustNewConstMetric(viewAgeDesc, prometheus.GaugeValue, st.age.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(viewBehindDesc, prometheus.CounterValue, float64(c.s.valuesBehind.Load()))
}

// hubCollector exports the websocket hub's counts.
type hubCollector struct{ h *hub.Hub }

var (
	wsClientsDesc = prometheus.NewDesc("picstats_ws_clients",
		"Websocket clients connected to /api/ws.", nil, nil)
	wsSentDesc = prometheus.NewDesc("picstats_ws_messages_sent_total",
		"Websocket messages (snapshots and updates) written to clients.", nil, nil)
	wsDroppedDesc = prometheus.NewDesc("picstats_ws_clients_dropped_total",
		"Websocket clients gone, by reason: too_slow, no_pong, client_closed, error, shutdown.", []string{"reason"}, nil)
)

func (c hubCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- wsClientsDesc
	ch <- wsSentDesc
	ch <- wsDroppedDesc
}

func (c hubCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(wsClientsDesc, prometheus.GaugeValue, float64(c.h.Clients()))
	ch <- prometheus.MustNewConstMetric(wsSentDesc, prometheus.CounterValue, float64(c.h.MessagesSent()))
	for _, r := range hub.DropReasons {
		ch <- prometheus.MustNewConstMetric(wsDroppedDesc, prometheus.CounterValue, float64(c.h.Dropped(r)), string(r))
	}
}

// progressInterval is how often the API logs its progress.
const progressInterval = time.Minute

// LogProgress logs one INFO line per minute — requests answered, the
// View's lag and data age, websocket clients and messages — until ctx
// ends.
func (s *Server) LogProgress(ctx context.Context) { s.logProgress(ctx, progressInterval) }

func (s *Server) logProgress(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	requests, sent := s.requests.Load(), s.hub.MessagesSent()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := s.fresh.status(time.Now())
		r, _ := s.readiness(st)
		n, m := s.requests.Load(), s.hub.MessagesSent()
		attrs := []any{"requests", n - requests, "requests_per_second", float64(n-requests) / interval.Seconds(),
			"view_state", r.Status, "view_lag", st.lag, "ws_clients", s.hub.Clients(), "ws_messages", m - sent}
		if st.known {
			attrs = append(attrs, "data_age_seconds", st.age.Seconds())
		}
		s.logger.Info("api progress", attrs...)
		requests, sent = n, m
	}
}
