package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

// mapTable stands in for the goka View in these unit tests of the routes;
// the end-to-end tests use a real View.
type mapTable struct {
	values    map[string][]byte
	recovered bool
}

func (m mapTable) Get(key string) (any, error) {
	if v, ok := m.values[key]; ok {
		return v, nil
	}
	return nil, nil
}
func (m mapTable) Recovered() bool { return m.recovered }

func encoded(t *testing.T, name string, regs ...codec.Registration) []byte {
	k, _ := stats.Lookup(name)
	recs := make([]stats.Record, len(regs))
	for i, r := range regs {
		recs[i] = stats.Record{Registration: r}
	}
	return tableValue(t, k, recs...)
}

// tableValue is the table value of statistic k over recs as the processor
// stores it: one partition's closed batch.
func tableValue(t *testing.T, k stats.Kind, recs ...stats.Record) []byte {
	t.Helper()
	s := k.New()
	for i := range recs {
		s.Add(&recs[i])
	}
	agg, err := k.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	var v table.Value
	if _, err := v.Apply(k, table.Snapshot{Batch: 0, Prev: -1, Final: true, Agg: agg}); err != nil {
		t.Fatal(err)
	}
	b, _ := v.MarshalBinary()
	return b
}

func TestRoutes(t *testing.T) {
	regs := []codec.Registration{{PictureID: "a", Weight: 100}, {PictureID: "b", Weight: 300}}
	table := mapTable{recovered: true, values: map[string][]byte{
		"count":          encoded(t, "count", regs...),
		"average_weight": encoded(t, "average_weight", regs...),
	}}
	tests := []struct {
		name       string
		method     string
		path       string
		table      Table
		wantStatus int
		wantBody   string // a substring of the body
	}{
		{"count", "GET", "/api/stats/count", table, 200, `{"registrations":2}`},
		{"average", "GET", "/api/stats/average_weight", table, 200, `"average_weight_grams":200`},
		{"no value yet is the empty result", "GET", "/api/stats/max_weight", table, 200, `{"max_weight_grams":null}`},
		{"all", "GET", "/api/stats", table, 200, `"count":{"registrations":2}`},
		{"unknown statistic lists the known", "GET", "/api/stats/median", table, 404, `"known":["average_weight","count","distinct_pictures",`},
		{"descriptions", "GET", "/api/statistics", table, 200, `"description":"Total number of valid registrations so far."`},
		{"healthz", "GET", "/healthz", nil, 200, `"ok"`},
		{"readyz before the view exists", "GET", "/readyz", nil, 503, `"recovering"`},
		{"readyz while recovering", "GET", "/readyz", mapTable{}, 503, `"recovering"`},
		{"readyz", "GET", "/readyz", table, 200, `"ready"`},
		{"stats while recovering", "GET", "/api/stats/count", mapTable{}, 503, `"error":"statistics are not ready yet`},
		{"wrong method", "POST", "/api/stats", table, 405, `"error":"method POST not allowed`},
		{"unknown route", "GET", "/api/nope", table, 404, `"error":"no route /api/nope"`},
		{"state of another version", "GET", "/api/stats/count", mapTable{recovered: true, values: map[string][]byte{"count": {99, 1}}}, 409, `version mismatch`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(stats.All(), slog.New(slog.DiscardHandler))
			if tt.table != nil {
				s.SetTable(tt.table)
				if tt.table.Recovered() { // as RunView does once the View runs and is caught up
					s.MarkRecovered()
					s.fresh.sampled(time.Now(), nil)
				}
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("%s %s = %d %s, want %d containing %s", tt.method, tt.path, rec.Code, body, tt.wantStatus, tt.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if !json.Valid(body) {
				t.Errorf("body is not JSON: %s", body)
			}
		})
	}
}

func TestEveryEnabledStatisticIsServed(t *testing.T) {
	s := New(stats.All(), slog.New(slog.DiscardHandler))
	s.SetTable(mapTable{recovered: true})
	s.MarkRecovered()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/stats", nil))
	var all map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &all); err != nil {
		t.Fatal(err)
	}
	for _, k := range stats.All() {
		if _, ok := all[k.Name]; !ok {
			t.Errorf("/api/stats lacks %s", k.Name)
		}
	}
}

func TestOnlyEnabledStatisticsAreServed(t *testing.T) {
	kinds, err := stats.Select("count,max_weight")
	if err != nil {
		t.Fatal(err)
	}
	s := New(kinds, slog.New(slog.DiscardHandler))
	s.SetTable(mapTable{recovered: true})
	s.MarkRecovered()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/api/stats"); code != 200 || body != `{"count":{"registrations":0},"max_weight":{"max_weight_grams":null}}`+"\n" {
		t.Errorf("/api/stats: %d %s", code, body)
	}
	if code, body := get("/api/stats/min_weight"); code != 404 || !strings.Contains(body, `"known":["count","max_weight"]`) {
		t.Errorf("/api/stats/min_weight of a disabled statistic: %d %s, want 404 listing the enabled ones", code, body)
	}
	if code, body := get("/api/statistics"); code != 200 || strings.Count(body, `"name"`) != 2 {
		t.Errorf("/api/statistics: %d %s, want the two enabled statistics", code, body)
	}
}

// storageTable is a table over the goka storage that Server.Update writes
// to, as a View is.
type storageTable struct {
	st        storage.Storage
	recovered atomic.Bool
}

func (s *storageTable) Get(key string) (any, error) {
	v, err := s.st.Get(key)
	if v == nil {
		return nil, err
	}
	return v, err
}
func (s *storageTable) Recovered() bool { return s.recovered.Load() }

// REST serves the JSON each update renders for the websocket instead of
// decoding the table per request; it must never serve a value the table
// has left, also after a View's recovery in which updates are not rendered.
func TestRESTFollowsEveryUpdate(t *testing.T) {
	reg := func(n int) []codec.Registration {
		var regs []codec.Registration
		for i := range n {
			regs = append(regs, codec.Registration{PictureID: "p", Weight: int64(100 + i)})
		}
		return regs
	}
	tbl := &storageTable{st: storage.NewMemory()}
	s := New(stats.All(), slog.New(slog.DiscardHandler))
	s.SetTable(tbl)
	offset := int64(0)
	update := func(n int) {
		t.Helper()
		for _, name := range []string{"count", "max_weight"} {
			offset++
			if err := s.Update(at(0, offset), tbl.st, name, encoded(t, name, reg(n)...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	get := func(path string) string {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Body.String()
	}
	want := func(step string, n int) {
		t.Helper()
		if got, w := get("/api/stats/count"), fmt.Sprintf(`{"registrations":%d}`+"\n", n); got != w {
			t.Errorf("%s: /api/stats/count = %s, want %s", step, got, w)
		}
		// /api/stats is the encoding of the map of every result.
		all := map[string]json.RawMessage{}
		for _, k := range stats.All() {
			all[k.Name] = json.RawMessage(get("/api/stats/" + k.Name))
		}
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(all); err != nil {
			t.Fatal(err)
		}
		if got := get("/api/stats"); got != buf.String() {
			t.Errorf("%s: /api/stats = %s\nwant the map of every result: %s", step, got, buf.String())
		}
	}

	update(1) // recovering: stored only
	tbl.recovered.Store(true)
	s.MarkRecovered()
	want("recovered, before publishAll", 1)
	s.publishAll(tbl)
	want("after publishAll", 1)
	update(2)
	want("live update", 2)
	tbl.recovered.Store(false) // the View reconnects: its updates go on
	update(3)
	want("while reconnecting", 3)
	tbl.recovered.Store(true)
	s.publishAll(tbl)
	want("recovered again, after publishAll", 3)
}

// updateAt is the context of a View's update of a table partition.
type updateAt struct {
	goka.DefaultUpdateContext
	partition int32
	offset    int64
}

func at(partition int32, offset int64) *updateAt {
	return &updateAt{partition: partition, offset: offset}
}

func (u *updateAt) Partition() int32 { return u.partition }
func (u *updateAt) Offset() int64    { return u.offset }
