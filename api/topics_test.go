package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
)

// windowedTable holds count and average_weight over default windows for
// records at the times and weights given.
func windowedTable(t *testing.T, at []time.Time, weights ...int) mapTable {
	t.Helper()
	tbl := mapTable{recovered: true, values: map[string][]byte{}}
	for _, k := range stats.WindowedKinds(stats.All(), stats.DefaultWindows) {
		base, _, _ := strings.Cut(k.Name, "@")
		if base == "count" || base == "average_weight" {
			recs := make([]stats.Record, len(weights))
			for i, w := range weights {
				recs[i] = stats.Record{Registration: codec.Registration{PictureID: "p", Weight: int64(w)}, Time: at[i]}
			}
			tbl.values[k.Name] = tableValue(t, k, recs...)
		}
	}
	return tbl
}

func newWindowedServer(t *testing.T) *Server {
	t.Helper()
	return New(stats.All(), slog.New(slog.DiscardHandler), WithWindows(stats.WindowedKinds(stats.All(), stats.DefaultWindows)))
}

func TestTopicsAreCheckedWhenSubscribed(t *testing.T) {
	s := newWindowedServer(t)
	for _, tc := range []struct {
		topic string
		want  string // "" valid, else a substring of the error
	}{
		{"count", ""},
		{"count?from=-1h", ""},
		{"average_weight?from=2026-12-03T10:00:00Z&to=2026-12-03T11:00:00Z", ""},
		{"count/windows?size=1h", ""},
		{"count/windows", ""},
		{"median", `unknown statistic "median"`},
		{"/api/stats/count", "want <statistic>"},
		{"http://host/count", "want <statistic>"},
		{"count?size=1h", `"size" is not an argument`},
		{"count?from=-1h&from=-2h", `"from" is not an argument it takes once`},
		{"count?to=-1h", "needs from="},
		{"count?from=yesterday", "or a relative one"},
		{"count?from=-1h&to=-2h", "must be after from"},
		{"pictures?from=-1h", "not kept over windows"},
		{"pictures/windows?size=1h", "not kept over windows"},
	} {
		err := s.Subscribe([]string{tc.topic})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want it accepted", tc.topic, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one with %q", tc.topic, err, tc.want)
		}
	}
}

// A dashboard's session: it subscribes to a statistic, a time range and a
// window list, gets what REST answers for each, and then every change —
// also the one of a relative range that only the clock moves.
func TestWebsocketTopicsAnswerAsRESTDoes(t *testing.T) {
	now := time.Now().UTC()
	hourAgo := now.Add(-61 * time.Minute) // in the 1h windows, not in the last hour's minutes
	s := newWindowedServer(t)
	first := windowedTable(t, []time.Time{now, now, hourAgo}, 100, 200, 600)
	first.values["count"] = encoded(t, "count", codec.Registration{PictureID: "p", Weight: 1})
	srv := serveTopics(t, s, first)
	rest := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/stats/" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	conn := dialTopics(t, srv)
	read := func() map[string]json.RawMessage {
		t.Helper()
		m := readTopics(t, conn)
		if m.Type == "error" {
			t.Fatalf("error message: %s", m.Error)
		}
		return m.Stats
	}
	read() // the default topics

	topics := []string{"count", "average_weight?from=-1h", "count/windows?size=1h"}
	if err := conn.WriteJSON(map[string]any{"v": 1, "type": "subscribe", "stats": topics}); err != nil {
		t.Fatal(err)
	}
	snap := read()
	if len(snap) != len(topics) {
		t.Fatalf("snapshot of %d topics, want %d: %s", len(snap), len(topics), snap)
	}
	for _, tp := range topics {
		if got, want := string(snap[tp]), rest(tp); !sameAnswer(t, got, want) {
			t.Errorf("%s: websocket %s, REST %s", tp, got, want)
		}
	}
	if !strings.Contains(string(snap["average_weight?from=-1h"]), `"average_weight_grams":150`) {
		t.Errorf("last hour's average %s, want 150 (the 600 g record is older)", snap["average_weight?from=-1h"])
	}

	// New records: the range and the window list change, and are sent.
	s.SetTable(windowedTable(t, []time.Time{now, now, hourAgo, now}, 100, 200, 600, 300))
	s.offer(s.hub.Demanded(), time.Now())
	got := map[string]json.RawMessage{}
	for len(got) < 2 {
		for k, v := range read() {
			got[k] = v
		}
	}
	for _, tp := range topics[1:] {
		if !sameAnswer(t, string(got[tp]), rest(tp)) {
			t.Errorf("%s: websocket update %s, REST %s", tp, got[tp], rest(tp))
		}
	}
	if _, ok := got["count"]; ok {
		t.Errorf("count sent again though only Update publishes it: %s", got["count"])
	}

	// Nothing new: offering again sends nothing of the window list; three
	// hours on, the last hour is empty (the View's clock moved, not its
	// table). (If a minute ends between the offers, the range's bounds move
	// and it is sent once more.)
	s.offer(s.hub.Demanded(), time.Now())
	s.offer(s.hub.Demanded(), time.Now().Add(3*time.Hour))
	for {
		upd := read()
		if len(upd) != 1 || upd["average_weight?from=-1h"] == nil {
			t.Fatalf("after the clock moved 3 hours: %s, want only the last hour", upd)
		}
		if strings.Contains(string(upd["average_weight?from=-1h"]), `"records":0`) {
			break
		}
	}
}

// sameAnswer compares a websocket topic's value with REST's answer. A
// relative range is resolved against each one's clock, so its from and to
// may differ by a window if a minute ends between the two; what it holds
// must not (the records here are not near its edges).
func sameAnswer(t *testing.T, ws, rest string) bool {
	t.Helper()
	var a, b map[string]any
	if err := json.Unmarshal([]byte(ws), &a); err != nil {
		t.Fatalf("websocket value %s: %v", ws, err)
	}
	if err := json.Unmarshal([]byte(rest), &b); err != nil {
		t.Fatalf("REST answer %s: %v", rest, err)
	}
	for _, m := range []map[string]any{a, b} {
		delete(m, "from")
		delete(m, "to")
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// serveTopics serves s over HTTP with tbl as its recovered table, its hub
// running, until the test ends.
func serveTopics(t *testing.T, s *Server, tbl Table) *httptest.Server {
	t.Helper()
	s.SetTable(tbl)
	s.MarkRecovered()
	s.publishAll(tbl) // as the View's runner does once it has recovered
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = s.hub.Run(ctx) }()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { cancel(); <-hubDone; srv.Close() })
	return srv
}

func dialTopics(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type topicsMessage struct {
	Type  string
	Error string
	Stats map[string]json.RawMessage
}

func readTopics(t *testing.T, conn *websocket.Conn) topicsMessage {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m topicsMessage
	if err := conn.ReadJSON(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Clients share the ranges they ask for alike; distinct ones are bounded.
func TestOnDemandTopicsAreBounded(t *testing.T) {
	now := time.Now().UTC()
	s := newWindowedServer(t)
	s.maxOnDemand = 3
	srv := serveTopics(t, s, windowedTable(t, []time.Time{now}, 100))
	subscribe := func(conn *websocket.Conn, topics ...string) topicsMessage {
		t.Helper()
		if err := conn.WriteJSON(map[string]any{"v": 1, "type": "subscribe", "stats": topics}); err != nil {
			t.Fatal(err)
		}
		for {
			if m := readTopics(t, conn); m.Type != "update" {
				return m
			}
		}
	}
	var conns []*websocket.Conn
	for range 3 {
		c := dialTopics(t, srv)
		readTopics(t, c) // the default topics
		conns = append(conns, c)
	}
	if m := subscribe(conns[0], "count", "count?from=-1h", "count/windows?size=1h"); m.Type != "snapshot" {
		t.Fatalf("two ranges: %+v", m)
	}
	if m := subscribe(conns[1], "count?from=-1h", "count/windows?size=1h", "average_weight?from=-1h"); m.Type != "snapshot" {
		t.Fatalf("the same two and a third: %+v", m)
	}
	m := subscribe(conns[2], "count?from=-2h")
	if m.Type != "error" || !strings.Contains(m.Error, "at most 3 distinct") {
		t.Fatalf("a fourth: %+v, want it refused", m)
	}
	if m := subscribe(conns[2], "average_weight?from=-1h"); m.Type != "snapshot" {
		t.Fatalf("one of the three: %+v", m)
	}
}
