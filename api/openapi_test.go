package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/internal/apicontract"
	"github.com/picstats/picstats/stats"
)

func loadOpenAPI(t *testing.T) *apicontract.Validator {
	t.Helper()
	v, err := apicontract.New(openAPIDoc)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.json is OpenAPI %s, want 3.1", v.Doc.OpenAPI)
	}
	return v
}

// TestOpenAPIDescribesEveryRoute checks that the document has an operation
// for every route and method of the handler, and no other.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t).Doc
	var served []string
	reg := prometheus.NewRegistry()
	s := New(stats.All(), newTestServer().logger, WithMetrics(reg, reg)) // /metrics is served with metrics only
	err := s.router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		if regexp, _ := route.GetPathRegexp(); strings.HasSuffix(path, "/") && !strings.HasSuffix(regexp, "$") {
			path += "{file}" // a PathPrefix: /static/
		}
		methods, err := route.GetMethods()
		if err != nil {
			return fmt.Errorf("route %s has no methods: %w", path, err)
		}
		for _, m := range methods {
			served = append(served, m+" "+path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// withImages answers /images/ before the router.
	served = append(served, "GET /images/{file}", "HEAD /images/{file}")
	var described []string
	for path, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			described = append(described, m+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(described)
	for _, r := range served {
		if !slices.Contains(described, r) {
			t.Errorf("the handler serves %s, which api/openapi.json does not describe", r)
		}
	}
	for _, r := range described {
		if !slices.Contains(served, r) {
			t.Errorf("api/openapi.json describes %s, which the handler does not serve", r)
		}
	}
}

// resultStream has records that give every statistic non-trivial results:
// rejected records of every reason, more distinct pictures than the exact
// bounds of pictures and distinct_pictures, timestamps over two hours.
func resultStream() []stats.Record {
	var recs []stats.Record
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	for _, r := range []codec.Reason{codec.ReasonEmpty, codec.ReasonMalformedJSON, codec.ReasonMissingPictureID,
		codec.ReasonInvalidPictureID, codec.ReasonMissingWeight, codec.ReasonInvalidWeight, codec.ReasonWeightOutOfRange} {
		recs = append(recs, stats.Record{Rejected: r, Time: t0})
	}
	for i := range 5000 {
		recs = append(recs, stats.Record{
			Registration: codec.Registration{PictureID: fmt.Sprintf("%012d", i), Weight: int64(1 + i*7%9000)},
			Time:         t0.Add(time.Duration(i) * 1500 * time.Millisecond),
		})
	}
	return recs
}

// TestOpenAPIHasASchemaForEveryStatistic checks that every registered
// statistic has its result schema, components/schemas/stat.{name}, in
// /api/stats and /api/stats/{name}, and that its results validate against
// it: of nothing, of one registration, and of a stream beyond its exact
// bounds.
func TestOpenAPIHasASchemaForEveryStatistic(t *testing.T) {
	doc := loadOpenAPI(t).Doc
	schemas := doc.Components.Schemas
	all := schemas["AllStatistics"].Value
	one := schemas["StatisticResult"].Value
	names := stats.Names(stats.All())
	var oneRefs []string
	for _, s := range one.AnyOf {
		oneRefs = append(oneRefs, s.Ref)
	}
	for name := range schemas {
		if stat, ok := strings.CutPrefix(name, "stat."); ok && !slices.Contains(names, stat) {
			t.Errorf("components/schemas/%s: no statistic %q is registered", name, stat)
		}
	}
	for prop := range all.Properties {
		if !slices.Contains(names, prop) {
			t.Errorf("AllStatistics has a property %q, which is no registered statistic", prop)
		}
	}
	if want := doc.Paths.Value("/api/stats/{name}").Get.Parameters.GetByInAndName("path", "name").Schema.Value.Enum; len(want) != len(names) {
		t.Errorf("the name parameter of /api/stats/{name} lists %d statistics, %d are registered", len(want), len(names))
	}
	stream := resultStream()
	for _, k := range stats.All() {
		ref := "#/components/schemas/stat." + k.Name
		schema := schemas["stat."+k.Name]
		if schema == nil {
			t.Errorf("statistic %s has no result schema %s in api/openapi.json", k.Name, ref)
			continue
		}
		if p := all.Properties[k.Name]; p == nil || p.Ref != ref {
			t.Errorf("AllStatistics (/api/stats) has no property %s referring to %s", k.Name, ref)
		}
		if !slices.Contains(oneRefs, ref) {
			t.Errorf("StatisticResult (/api/stats/{name}) does not list %s", ref)
		}
		for _, recs := range [][]stats.Record{nil, stream[len(stream)-1:], stream} {
			agg := k.New()
			for i := range recs {
				agg.Add(&recs[i])
			}
			b, err := json.Marshal(agg.Result())
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			if err := schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
				t.Errorf("%s's result of %d records breaks %s: %s\n%v", k.Name, len(recs), ref, clipped(b), err)
			}
		}
	}
}

func clipped(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(b)
}

// failingTable's reads fail.
type failingTable struct{}

func (failingTable) Get(string) (any, error) { return nil, errors.New("the disk is on fire") }
func (failingTable) Recovered() bool         { return true }

// TestOpenAPIDescribesEveryAnswer sends each route the requests that give
// each of its answers, errors included, and checks each answer against the
// document.
func TestOpenAPIDescribesEveryAnswer(t *testing.T) {
	v := loadOpenAPI(t)
	type request struct {
		method, path string
		header       http.Header
		want         int
	}
	check := func(t *testing.T, h http.Handler, reqs ...request) {
		t.Helper()
		for _, r := range reqs {
			req := httptest.NewRequest(r.method, r.path, nil)
			for k, vs := range r.header {
				req.Header[k] = vs
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != r.want {
				t.Errorf("%s %s: %d %s, want %d", r.method, r.path, rec.Code, clipped(rec.Body.Bytes()), r.want)
			}
			if err := v.Check(req, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
				t.Error(err)
			}
		}
	}
	get := func(path string, want int) request { return request{"GET", path, nil, want} }
	head := func(path string, want int) request { return request{"HEAD", path, nil, want} }

	s := newTestServer()
	t.Run("before the view has recovered", func(t *testing.T) {
		check(t, s.Handler(),
			get("/api/stats", 503), get("/api/stats/count", 503), head("/api/stats", 503),
			get("/api/stats/nope", 404), get("/api/stats/a/b", 404),
			get("/readyz", 503), head("/readyz", 503), get("/healthz", 200), head("/healthz", 200),
			get("/api/statistics", 200), get("/api/openapi.json", 200), head("/api/openapi.json", 200),
			request{"GET", "/api/openapi.json", http.Header{"If-None-Match": {openAPIETag}}, 304},
			get("/", 200), head("/", 200), get("/static/app.js", 200), get("/static/style.css", 200),
			get("/static/index.html", 200), get("/static/nope.js", 404), get("/static/", 404),
			request{"GET", "/static/app.js", http.Header{"If-None-Match": {webETags["app.js"]}}, 304},
			request{"GET", "/static/app.js", http.Header{"Range": {"bytes=0-9"}}, 206},
			request{"GET", "/static/app.js", http.Header{"Range": {"bytes=999999-"}}, 416},
			request{"GET", "/static/app.js", http.Header{"If-Match": {`"other"`}}, 412},
			get("/images/000000243626.jpg", 404), get("/images/../x", 404),
			get("/api/ws", 400),
			request{"GET", "/api/ws", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
				"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
				"Origin": {"https://elsewhere.example"}}, 403},
			request{"GET", "/api/ws", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
				"Sec-Websocket-Version": {"8"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}, 400},
			get("/nope", 404), head("/nope", 404), get("/api", 404),
			get("/api/stats/..", 404), get("/api/stats/.", 404), get("/api/stats/%2e%2e", 404), get("//api/stats", 404),
			get("/api//stats", 404), get("/./", 404), get("/static/../static/app.js", 404), get("/api/stats/", 404),
			get("/api/stats/a%2Fb", 404), get("/static/a%2Fb", 404),
			request{"POST", "/api/stats", nil, 405}, request{"DELETE", "/api/stats/count", nil, 405},
			request{"PUT", "/", nil, 405}, request{"POST", "/images/a.jpg", nil, 405}, request{"HEAD", "/api/ws", nil, 405},
			request{"PATCH", "/api/openapi.json", nil, 405},
		)
	})

	regs := []codec.Registration{{PictureID: "a", Weight: 100}, {PictureID: "b", Weight: 300}}
	values := map[string][]byte{}
	for _, k := range stats.All() {
		values[k.Name] = encoded(t, k.Name, regs...)
	}
	s.SetTable(mapTable{recovered: true, values: values})
	s.MarkRecovered()
	t.Run("recovered, end offsets not checked yet", func(t *testing.T) {
		reqs := []request{get("/api/stats", 200), head("/api/stats", 200), get("/readyz", 503)}
		for _, k := range stats.All() {
			reqs = append(reqs, get("/api/stats/"+k.Name, 200))
		}
		check(t, s.Handler(), reqs...)
	})
	t.Run("ready", func(t *testing.T) {
		s.fresh.applied(0, 41)
		s.fresh.sampled(time.Now(), []int64{42})
		check(t, s.Handler(), get("/readyz", 200), head("/readyz", 200), get("/api/stats", 200), get("/api/stats/pictures", 200))
	})
	t.Run("stale", func(t *testing.T) {
		s := newTestServer()
		s.SetTable(mapTable{recovered: true, values: values})
		s.MarkRecovered()
		s.fresh.applied(0, 41)
		s.fresh.sampled(time.Now().Add(-10*time.Second), []int64{42})
		check(t, s.Handler(), get("/readyz", 503), get("/api/stats/count", 200))
	})

	t.Run("state of another version", func(t *testing.T) {
		s := newTestServer()
		s.SetTable(mapTable{recovered: true, values: map[string][]byte{"count": {99, 1}}})
		s.MarkRecovered()
		check(t, s.Handler(), get("/api/stats/count", 409), get("/api/stats", 409))
	})
	t.Run("table read fails", func(t *testing.T) {
		s := newTestServer()
		s.SetTable(failingTable{})
		s.MarkRecovered()
		check(t, s.Handler(), get("/api/stats/count", 500), get("/api/stats", 500))
	})
	t.Run("wedged", func(t *testing.T) {
		s := New(stats.All(), s.logger, WithWedgedAfter(time.Millisecond))
		done := s.fresh.busy(0)
		defer done()
		time.Sleep(5 * time.Millisecond)
		check(t, s.Handler(), get("/healthz", 503))
	})
	t.Run("shutting down", func(t *testing.T) {
		s := newTestServer()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Hub().Run(ctx)
		check(t, s.Handler(), request{"GET", "/api/ws", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}, 503})
	})
	t.Run("a picture", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "000000243626.jpg"), []byte("\xff\xd8\xff\xe0 not really a picture"), 0o644))
		s := newTestServer()
		s.ServeImages(dir)
		check(t, s.Handler(), get("/images/000000243626.jpg", 200), head("/images/000000243626.jpg", 200), get("/images/000000000001.jpg", 404))
	})
	t.Run("metrics", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s := New(stats.All(), s.logger, WithMetrics(reg, reg))
		check(t, s.Handler(), get("/metrics", 200), head("/metrics", 200))
	})
	t.Run("too many connections", func(t *testing.T) {
		// The limiter's refusal is written to the connection before any
		// route is found: whatever was asked, it must be an answer the
		// document lists.
		reply := LimitConnections(nil, 7, nil).reply
		for _, path := range []string{"/api/stats", "/api/stats/count", "/api/statistics", "/healthz", "/readyz", "/", "/static/app.js", "/images/a.jpg", "/api/ws", "/api/openapi.json"} {
			req := httptest.NewRequest("GET", path, nil)
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(reply)), req)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.CheckResponse(resp); err != nil || resp.StatusCode != 503 {
				t.Errorf("the limiter's %d for %s: %v", resp.StatusCode, path, err)
			}
		}
	})
}

// TestOpenAPIServed checks that /api/openapi.json serves the embedded
// document as JSON.
func TestOpenAPIServed(t *testing.T) {
	rec := httptest.NewRecorder()
	newTestServer().Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/openapi.json", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || !bytes.Equal(body, openAPIDoc) || !json.Valid(body) {
		t.Fatalf("/api/openapi.json: %d %s, %d bytes; want 200, JSON, the embedded document", rec.Code, rec.Header().Get("Content-Type"), len(body))
	}
	page := httptest.NewRecorder()
	newTestServer().Handler().ServeHTTP(page, httptest.NewRequest("GET", "/", nil))
	if !strings.Contains(page.Body.String(), `<a href="/api/openapi.json">`) {
		t.Error("the dashboard's page does not link /api/openapi.json")
	}
}
