package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/internal/testkafka"
	"github.com/picstats/picstats/processor"
)

// TestWebsocketFollowsTheTable is a dashboard's session: it connects to
// /api/ws before anything is registered, gets a snapshot, and then sees the
// count climb to exactly what was produced, pushed from the View's update
// callback as the table changes, and updates of the other statistics too.
// (A missing update fails by the read deadline.) A second API, started
// afterwards, recovers the table and serves it in its first snapshot.
func TestWebsocketFollowsTheTable(t *testing.T) {
	cfg := testkafka.Start(t)
	if err := cluster.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	startProcessor(t, cfg, processor.WithBatchSize(100))
	url := startAPI(t, cfg)

	dial := func(url string) *websocket.Conn {
		t.Helper()
		conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/api/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	conn := dial(url)
	type message struct {
		V     int                        `json:"v"`
		Type  string                     `json:"type"`
		Stats map[string]json.RawMessage `json:"stats"`
	}
	read := func(conn *websocket.Conn) message {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
		var m message
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("reading the websocket: %v", err)
		}
		if m.V != 1 {
			t.Fatalf("message version %d, want 1", m.V)
		}
		return m
	}
	if first := read(conn); first.Type != "snapshot" {
		t.Fatalf("first message is %q, want the snapshot", first.Type)
	}

	want := newFeed(rand.New(rand.NewPCG(6, 6)), string(cfg.Names.Pictures), 500)
	produce(t, cfg, want.records)
	seen := map[string]bool{}
	others := []string{"average_weight", "rejected", "top_pictures"}
	allSeen := func() bool {
		for _, name := range others {
			if !seen[name] {
				return false
			}
		}
		return true
	}
	for count := int64(-1); count != want.count || !allSeen(); {
		m := read(conn)
		if m.Type != "update" || len(m.Stats) == 0 {
			t.Fatalf("got a %q message with %d statistics, want updates", m.Type, len(m.Stats))
		}
		for name, res := range m.Stats {
			seen[name] = true
			if name == "count" {
				var c struct {
					Registrations int64 `json:"registrations"`
				}
				if err := json.Unmarshal(res, &c); err != nil {
					t.Fatal(err)
				}
				if c.Registrations < count || c.Registrations > want.count {
					t.Fatalf("count went from %d to %d (produced %d valid)", count, c.Registrations, want.count)
				}
				count = c.Registrations
			}
		}
	}

	// A new API replica: its View recovers the table, and the snapshot of
	// a client that connects once it is ready holds the final count.
	late := startAPI(t, cfg)
	awaitReadyz(t, late, http.StatusOK, time.Minute)
	snap := read(dial(late))
	wantCount := fmt.Sprintf(`{"registrations":%d}`, want.count)
	if snap.Type != "snapshot" || string(snap.Stats["count"]) != wantCount {
		t.Fatalf("a new replica's first message: %s with count %s, want the snapshot with %s", snap.Type, snap.Stats["count"], wantCount)
	}
}
