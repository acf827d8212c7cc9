package hub

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/picstats/picstats/internal/await"
)

// offerer is a Subscriptions that refuses topics starting with "bad" and
// offers a value for every topic with a "?" in it, as the API does for
// time ranges.
type offerer struct {
	hub   *Hub
	calls atomic.Int64
}

func (o *offerer) Subscribe(topics []string) error {
	o.calls.Add(1)
	for _, t := range topics {
		if strings.HasPrefix(t, "bad") {
			return fmt.Errorf("no topic %q", t)
		}
	}
	for _, t := range topics {
		if strings.Contains(t, "?") {
			o.hub.Offer(t, json.RawMessage(`"first `+t+`"`))
		}
	}
	return nil
}

// rawMessage is any message of the hub: stats or an error.
type rawMessage struct {
	V     int                        `json:"v"`
	Type  string                     `json:"type"`
	Stats map[string]json.RawMessage `json:"stats"`
	Error string                     `json:"error"`
}

func readAny(t *testing.T, conn *websocket.Conn) rawMessage {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m rawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

// readUntil reads messages until the values seen equal want for its keys,
// and fails if any message carries a topic not in allowed.
func readUntil(t *testing.T, conn *websocket.Conn, want map[string]string, allowed ...string) {
	t.Helper()
	seen := map[string]string{}
	for {
		m := readAny(t, conn)
		if m.Type != "update" {
			t.Fatalf("got a %q message (%s), want updates", m.Type, m.Error)
		}
		for k, v := range m.Stats {
			if !slices.Contains(allowed, k) {
				t.Fatalf("got topic %q = %s, not subscribed to (want only %v)", k, v, allowed)
			}
			seen[k] = string(v)
		}
		done := true
		for k, v := range want {
			done = done && seen[k] == v
		}
		if done {
			return
		}
	}
}

func subscribe(t *testing.T, conn *websocket.Conn, topics ...string) {
	t.Helper()
	msg := map[string]any{"v": 1, "type": "subscribe", "stats": topics}
	if topics == nil {
		msg = map[string]any{"v": 1, "type": "subscribe"}
	}
	if err := conn.WriteJSON(msg); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
}

// A user's session: one dashboard on the default topics, one that chooses
// a time range and changes its mind.
func TestHubSubscriptions(t *testing.T) {
	o := &offerer{}
	hs := startHub(t, WithFlushInterval(10*time.Millisecond), WithSubscriptions(o))
	o.hub = hs.hub
	hs.hub.Publish("a", json.RawMessage(`1`))
	hs.hub.Publish("b", json.RawMessage(`1`))

	plain := hs.dial(t, nil)
	assertStats(t, readMessage(t, plain, 10*time.Second), "snapshot", map[string]string{"a": `1`, "b": `1`})
	ranged := hs.dial(t, nil)
	readMessage(t, ranged, 10*time.Second)

	subscribe(t, ranged, "a", "a?from=-1h")
	assertStats(t, readMessage(t, ranged, 10*time.Second), "snapshot",
		map[string]string{"a": `1`, "a?from=-1h": `"first a?from=-1h"`})
	if got := hs.hub.Demanded(); !slices.Equal(got, []string{"a", "a?from=-1h"}) {
		t.Errorf("Demanded() = %v, want [a a?from=-1h]", got)
	}

	// An on-demand value goes to its subscriber only; b to the default client only.
	hs.hub.Offer("a?from=-1h", json.RawMessage(`"second"`))
	hs.hub.Publish("b", json.RawMessage(`2`))
	hs.hub.Publish("a", json.RawMessage(`2`))
	readUntil(t, ranged, map[string]string{"a?from=-1h": `"second"`, "a": `2`}, "a", "a?from=-1h")
	readUntil(t, plain, map[string]string{"a": `2`, "b": `2`}, "a", "b")

	// Offering the same value again sends nothing: the next message is a's.
	hs.hub.Offer("a?from=-1h", json.RawMessage(`"second"`))
	hs.hub.Publish("a", json.RawMessage(`3`))
	assertStats(t, readMessage(t, ranged, 10*time.Second), "update", map[string]string{"a": `3`})

	// Refused: an error message, and the subscription stays as it was.
	subscribe(t, ranged, "a", "bad topic")
	if m := readAny(t, ranged); m.Type != "error" || !strings.Contains(m.Error, `"bad topic"`) {
		t.Fatalf("got %+v, want an error naming the topic", m)
	}
	hs.hub.Offer("a?from=-1h", json.RawMessage(`"third"`))
	assertStats(t, readMessage(t, ranged, 10*time.Second), "update", map[string]string{"a?from=-1h": `"third"`})

	// Not a message at all: an error, and the client stays connected.
	if err := ranged.WriteMessage(websocket.TextMessage, []byte(`{"type":"unsubscribe"}`)); err != nil {
		t.Fatal(err)
	}
	if m := readAny(t, ranged); m.Type != "error" || !strings.Contains(m.Error, `"subscribe"`) {
		t.Fatalf("got %+v, want an error that says what to send", m)
	}

	// Back to the default topics: a snapshot of them, and the range is no
	// longer demanded, nor its value kept.
	subscribe(t, ranged)
	assertStats(t, readMessage(t, ranged, 10*time.Second), "snapshot", map[string]string{"a": `3`, "b": `2`})
	if got := hs.hub.Demanded(); len(got) != 0 {
		t.Errorf("Demanded() = %v after the only subscriber left the range, want none", got)
	}
	hs.hub.Offer("a?from=-1h", json.RawMessage(`"unwanted"`))
	hs.hub.Publish("b", json.RawMessage(`3`))
	readUntil(t, ranged, map[string]string{"b": `3`}, "b")

	// A subscriber that leaves takes its demand with it.
	other := hs.dial(t, nil)
	readMessage(t, other, 10*time.Second)
	subscribe(t, other, "a?from=-2h")
	readMessage(t, other, 10*time.Second)
	other.Close()
	await.True(t, 10*time.Second, "the demand of a closed client to go", func() bool { return len(hs.hub.Demanded()) == 0 })
	if n := o.calls.Load(); n != 3 {
		t.Errorf("Subscribe called %d times, want 3 (the default subscription needs no check)", n)
	}
}

// After the snapshot of a new subscription a client never gets an update
// of a topic it left, however busy the publishers are. (A stress test: with
// subscribe not holding sendMu, one run in a few fails.)
func TestHubNoUpdateOfOldTopicsAfterTheSnapshot(t *testing.T) {
	hs := startHub(t, WithFlushInterval(time.Millisecond), WithClientBuffer(1<<12))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() { close(stop); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			hs.hub.Publish("old", json.RawMessage(fmt.Sprint(i)))
			hs.hub.Publish("new", json.RawMessage(fmt.Sprint(i)))
		}
	}()
	for round := range 300 {
		conn := hs.dial(t, nil)
		readAny(t, conn) // the snapshot of the default topics
		subscribe(t, conn, "new")
		for { // their updates, then the snapshot of [new]
			if m := readAny(t, conn); m.Type == "snapshot" {
				break
			}
		}
		for range 5 {
			m := readAny(t, conn)
			if _, ok := m.Stats["old"]; ok || m.Type != "update" {
				t.Fatalf("round %d: got %s %v after the snapshot of [new]", round, m.Type, m.Stats)
			}
		}
		conn.Close()
	}
}

func TestHubRefusesOversizedSubscriptions(t *testing.T) {
	hs := startHub(t)
	conn := hs.dial(t, nil)
	readMessage(t, conn, 10*time.Second)
	for _, tc := range []struct {
		topics []string
		want   string
	}{
		{make([]string, MaxTopics+1), "at most 256"},
		{[]string{""}, "1 to 512 bytes"},
		{[]string{strings.Repeat("x", 513)}, "1 to 512 bytes"},
	} {
		for i := range tc.topics {
			if tc.topics[i] == "" && len(tc.topics) > 1 {
				tc.topics[i] = fmt.Sprint(i)
			}
		}
		subscribe(t, conn, tc.topics...)
		if m := readAny(t, conn); m.Type != "error" || !strings.Contains(m.Error, tc.want) {
			t.Errorf("got %+v, want an error with %q", m, tc.want)
		}
	}
	if d := hs.hub.Demanded(); len(d) != 0 {
		t.Errorf("Demanded() = %v after refused subscriptions", d)
	}
}
