package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/picstats/picstats/internal/await"
)

// hubServer is a running hub behind a real HTTP server.
type hubServer struct {
	hub    *Hub
	srv    *httptest.Server
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	err    error         // what Run returned
}

func startHub(t *testing.T, opts ...Option) *hubServer {
	t.Helper()
	hs := newHubServer(t, opts...)
	hs.run(t)
	return hs
}

// newHubServer serves a hub whose Run is not started yet.
func newHubServer(t *testing.T, opts ...Option) *hubServer {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := New(append([]Option{WithLogger(logger)}, opts...)...)
	hs := &hubServer{hub: h, srv: httptest.NewServer(h), cancel: func() {}, done: make(chan struct{})}
	t.Cleanup(hs.srv.Close)
	return hs
}

func (hs *hubServer) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	hs.cancel = cancel
	go func() {
		hs.err = hs.hub.Run(ctx)
		close(hs.done)
	}()
	t.Cleanup(func() { hs.stop(t) }) // before the server closes
}

func (hs *hubServer) stop(t *testing.T) {
	t.Helper()
	hs.cancel()
	select {
	case <-hs.done:
	case <-time.After(10 * time.Second):
		t.Error("Run did not return after cancel")
	}
}

func (hs *hubServer) url() string { return "ws" + strings.TrimPrefix(hs.srv.URL, "http") + "/api/ws" }

func (hs *hubServer) dial(t *testing.T, header http.Header) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(hs.url(), header)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, body(resp))
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func body(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

type wsMessage struct {
	V     int                        `json:"v"`
	Type  string                     `json:"type"`
	Stats map[string]json.RawMessage `json:"stats"`
}

func readMessage(t *testing.T, conn *websocket.Conn, within time.Duration) wsMessage {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	typ, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("message type %d, want text", typ)
	}
	var m wsMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if m.V != 1 || m.Stats == nil {
		t.Fatalf("message %s: want v 1 and a stats object", b)
	}
	return m
}

func assertStats(t *testing.T, m wsMessage, typ string, want map[string]string) {
	t.Helper()
	if m.Type != typ {
		t.Fatalf("type %q, want %q", m.Type, typ)
	}
	got := map[string]string{}
	for k, v := range m.Stats {
		got[k] = string(v)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s stats %v, want %v", typ, got, want)
	}
}

func TestHubSnapshotThenUpdates(t *testing.T) {
	hs := startHub(t, WithFlushInterval(10*time.Millisecond))
	hs.hub.Publish("a", json.RawMessage(`1`))
	hs.hub.Publish("b", json.RawMessage(`{"x":2}`))

	conn := hs.dial(t, nil)
	assertStats(t, readMessage(t, conn, 5*time.Second), "snapshot", map[string]string{"a": `1`, "b": `{"x":2}`})

	hs.hub.Publish("a", json.RawMessage(`3`))
	assertStats(t, readMessage(t, conn, 5*time.Second), "update", map[string]string{"a": `3`})

	hs.hub.Publish("b", json.RawMessage(`{"x":4}`))
	assertStats(t, readMessage(t, conn, 5*time.Second), "update", map[string]string{"b": `{"x":4}`})
}

// A value published before a client connects, but flushed after, is in its
// snapshot and is not sent again as an update.
func TestHubSnapshotIsNotRepeated(t *testing.T) {
	hs := newHubServer(t, WithFlushInterval(10*time.Millisecond))
	hs.hub.Publish("a", json.RawMessage(`1`))
	conn := hs.dial(t, nil)
	assertStats(t, readMessage(t, conn, 5*time.Second), "snapshot", map[string]string{"a": `1`})

	hs.run(t) // flushes a=1, to clients older than it: none
	hs.hub.Publish("b", json.RawMessage(`2`))
	assertStats(t, readMessage(t, conn, 5*time.Second), "update", map[string]string{"b": `2`})
	conn.Close() // now, not after Run's cleanup, which would wait for it to answer the close
}

func TestHubEmptySnapshot(t *testing.T) {
	hs := startHub(t)
	conn := hs.dial(t, nil)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"v":1,"type":"snapshot","stats":{}}` {
		t.Fatalf("snapshot %s", b)
	}
}

func TestHubCoalescesBursts(t *testing.T) {
	const interval = 50 * time.Millisecond
	hs := startHub(t, WithFlushInterval(interval))
	conn := hs.dial(t, nil)
	assertStats(t, readMessage(t, conn, 5*time.Second), "snapshot", map[string]string{})

	const n = 1000
	start := time.Now()
	for i := 1; i <= n; i++ {
		hs.hub.Publish("count", json.RawMessage(strconv.Itoa(i)))
	}
	// The rate cap: one flush at the first publish, then at most one per
	// interval while the burst lasts, and one for what is left. The burst
	// takes a millisecond or so; on a busy machine it may be preempted for
	// longer, which only allows more messages: the bound follows its length.
	burst := time.Since(start)
	maxMessages := 2 + int(burst/interval)

	messages, last := 0, 0
	for last != n {
		m := readMessage(t, conn, 5*time.Second)
		messages++
		if m.Type != "update" || len(m.Stats) != 1 {
			t.Fatalf("message %d: %+v, want an update of count only", messages, m)
		}
		v, err := strconv.Atoi(string(m.Stats["count"]))
		if err != nil || v <= last {
			t.Fatalf("message %d: count %s after %d: want a newer value", messages, m.Stats["count"], last)
		}
		last = v
	}
	t.Logf("%d publishes in %v gave %d messages", n, burst, messages)
	if messages > maxMessages {
		t.Errorf("%d publishes in %v gave %d messages, want at most %d (one per %v flush interval)", n, burst, messages, maxMessages, interval)
	}
	// Nothing more: the last value has been sent and nothing changed since.
	_ = conn.SetReadDeadline(time.Now().Add(4 * interval))
	if _, b, err := conn.ReadMessage(); err == nil {
		t.Errorf("unexpected message after the final value: %s", b)
	}
}

// Clients connecting while values change never see a value go backwards, nor
// get one twice: what their snapshot holds is not sent again.
func TestHubNoValueGoesBackwards(t *testing.T) {
	hs := startHub(t, WithFlushInterval(time.Millisecond))
	const n = 3000
	go func() {
		for i := 1; i <= n; i++ {
			hs.hub.Publish("count", json.RawMessage(strconv.Itoa(i)))
			if i%100 == 0 {
				time.Sleep(time.Millisecond) // let flushes and connects interleave
			}
		}
	}()

	const clients = 10
	errs := make(chan error, clients)
	for range clients {
		conn := hs.dial(t, nil)
		go func() {
			last := -1
			for last != n {
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, b, err := conn.ReadMessage()
				if err != nil {
					errs <- err
					return
				}
				var m wsMessage
				if err := json.Unmarshal(b, &m); err != nil {
					errs <- err
					return
				}
				v := 0 // not published yet
				if raw, ok := m.Stats["count"]; ok {
					v, _ = strconv.Atoi(string(raw))
				}
				if (m.Type == "snapshot") != (last == -1) || v <= last {
					errs <- fmt.Errorf("%s with count %d after %d", m.Type, v, last)
					return
				}
				last = v
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestHubDropsSlowClient(t *testing.T) {
	hs := startHub(t,
		WithFlushInterval(5*time.Millisecond),
		WithClientBuffer(2),
		WithWriteTimeout(5*time.Second)) // the fast client must never miss it, however busy the machine

	slow := hs.dial(t, nil) // never reads, until it has been dropped
	fast := hs.dial(t, nil)
	await.True(t, 5*time.Second, "two clients", func() bool { return hs.hub.Clients() == 2 })

	// The fast client reports every value it gets, in order.
	got := make(chan int, 1024)
	go func() {
		defer close(got)
		for {
			_ = fast.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, b, err := fast.ReadMessage()
			if err != nil {
				return
			}
			var m struct {
				Stats map[string]struct{ N int }
			}
			if json.Unmarshal(b, &m) == nil {
				if s, ok := m.Stats["big"]; ok {
					got <- s.N
				}
			}
		}
	}()
	last := 0
	await := func(want int, within time.Duration) {
		t.Helper()
		timeout := time.After(within)
		for last < want {
			select {
			case v, ok := <-got:
				if !ok {
					t.Fatalf("the fast client's connection failed waiting for %d", want)
				}
				if v <= last {
					t.Fatalf("fast client got %d after %d", v, last)
				}
				last = v
			case <-timeout:
				t.Fatalf("fast client did not get value %d within %v (last %d)", want, within, last)
			}
		}
	}

	// 1 MB values fill the slow client's socket buffers within a few
	// updates; then its queue of 2 fills and it is dropped.
	pad := strings.Repeat("x", 1<<20)
	i := 0
	for hs.hub.Clients() == 2 {
		i++
		if i > 500 {
			t.Fatal("the slow client was never dropped")
		}
		hs.hub.Publish("big", json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad)))
		await(i, 5*time.Second)
	}
	t.Logf("slow client dropped after %d updates of 1 MB", i)
	if n := hs.hub.Dropped(DropTooSlow); n != 1 {
		t.Errorf("Dropped(too_slow) = %d, want 1", n)
	}

	// The fast client goes on getting the latest value promptly.
	for range 3 {
		i++
		hs.hub.Publish("big", json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":"small"}`, i)))
		await(i, 5*time.Second)
	}
	if c := hs.hub.Clients(); c != 1 {
		t.Fatalf("%d clients, want 1", c)
	}

	// The slow client's connection ends: it reads what was buffered, then the
	// close frame, or an error if the hub could not even send that.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = slow.SetReadDeadline(deadline)
		_, _, err := slow.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code != websocket.CloseTryAgainLater && ce.Code != websocket.CloseAbnormalClosure {
			t.Fatalf("slow client closed with %v, want 1013 (too slow)", ce)
		}
		if time.Now().After(deadline) {
			t.Fatalf("slow client's connection still open: %v", err)
		}
		t.Logf("slow client: %v", err)
		break
	}
}

func TestHubDropsClientWithoutPongs(t *testing.T) {
	hs := startHub(t, WithPingInterval(20*time.Millisecond))
	conn := hs.dial(t, nil)
	// Pongs are only sent while reading; this client stops after the snapshot.
	readMessage(t, conn, 5*time.Second)
	await.True(t, 5*time.Second, "the silent client to be dropped", func() bool { return hs.hub.Clients() == 0 })
}

// A client that reads, and so answers pings, stays past the pong wait. The
// ping interval is a second (a pong wait of 2.5 s): a pong would have to be
// more than 1.5 s late for the hub to drop the client, which no scheduling
// delay of a busy machine comes near; the test counts pings rather than
// timing them.
func TestHubKeepsClientThatAnswersPings(t *testing.T) {
	const interval = time.Second
	hs := startHub(t, WithPingInterval(interval))
	live := hs.dial(t, nil)
	readMessage(t, live, 5*time.Second)

	pings := make(chan struct{}, 16)
	live.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return live.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
	})
	readErr := make(chan error, 1)
	go func() {
		_ = live.SetReadDeadline(time.Time{})
		_, _, err := live.ReadMessage() // answers pings until a message, an error, or the cleanup's close
		readErr <- err
	}()
	// The hub pings only clients it still serves: the fourth ping comes
	// 4 intervals after the connection, well past the first pong wait
	// (2.5 intervals), so the pongs have extended it.
	for i := 1; i <= 4; i++ {
		select {
		case <-pings:
		case err := <-readErr:
			t.Fatalf("reading client after %d pings: %v, want no message and still connected", i-1, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("no ping %d within 30s (interval %v)", i, interval)
		}
	}
	if c := hs.hub.Clients(); c != 1 {
		t.Fatalf("%d clients, want the reading one", c)
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

func TestHubShutdownClosesClients(t *testing.T) {
	hs := startHub(t, WithWriteTimeout(time.Second))
	hs.hub.Publish("a", json.RawMessage(`1`))

	const n = 3
	closed := make(chan error, n)
	for range n {
		conn := hs.dial(t, nil)
		readMessage(t, conn, 5*time.Second) // registered before its snapshot is sent
		go func() {
			// Reading is what makes gorilla answer the hub's close frame.
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					closed <- err
					return
				}
			}
		}()
	}
	if c := hs.hub.Clients(); c != n {
		t.Fatalf("%d clients, want %d", c, n)
	}

	start := time.Now()
	hs.cancel()
	select {
	case <-hs.done:
		if hs.err != nil {
			t.Fatalf("Run: %v", hs.err)
		}
	case <-time.After(15 * time.Second): // about the write timeout at worst; generous for a busy machine
		t.Fatal("Run did not return within 15s of cancel")
	}
	t.Logf("Run returned %v after cancel", time.Since(start))
	if c := hs.hub.Clients(); c != 0 {
		t.Fatalf("%d clients after shutdown, want 0", c)
	}
	for range n {
		err := <-closed
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("client read %v, want close 1001 (going away)", err)
		}
	}

	// New clients are refused.
	_, resp, err := websocket.DefaultDialer.Dial(hs.url(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after shutdown: %v, %s; want 503", err, body(resp))
	}
	assertJSONError(t, resp, "shutting down")
}

// A client that does not answer the close frame delays shutdown by the write
// timeout at most.
func TestHubShutdownIsBounded(t *testing.T) {
	const timeout = 500 * time.Millisecond
	hs := startHub(t, WithWriteTimeout(timeout))
	readMessage(t, hs.dial(t, nil), 5*time.Second) // then stops reading

	start := time.Now()
	hs.cancel()
	select {
	case <-hs.done:
	case <-time.After(20 * timeout): // about the write timeout twice at worst; generous for a busy machine
		t.Fatalf("Run did not return within %v of cancel", 20*timeout)
	}
	t.Logf("Run returned %v after cancel", time.Since(start))
}

func assertJSONError(t *testing.T, resp *http.Response, contains ...string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("body is not a JSON error: %v", err)
	}
	for _, s := range contains {
		if !strings.Contains(e.Error, s) {
			t.Errorf("error %q does not mention %q", e.Error, s)
		}
	}
}

func TestHubOriginCheck(t *testing.T) {
	const foreign = "http://evil.example"
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }

	t.Run("foreign origin is refused with 403", func(t *testing.T) {
		hs := startHub(t)
		_, resp, err := websocket.DefaultDialer.Dial(hs.url(), origin(foreign))
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial: %v, %s; want 403", err, body(resp))
		}
		assertJSONError(t, resp, foreign, "--allowed-origins")
		if c := hs.hub.Clients(); c != 0 {
			t.Fatalf("%d clients", c)
		}
	})
	t.Run("no origin (not a browser) is allowed", func(t *testing.T) {
		hs := startHub(t)
		readMessage(t, hs.dial(t, nil), 5*time.Second)
	})
	t.Run("same origin is allowed", func(t *testing.T) {
		hs := startHub(t)
		readMessage(t, hs.dial(t, origin(hs.srv.URL)), 5*time.Second)
	})
	t.Run("configured origin is allowed", func(t *testing.T) {
		hs := startHub(t, WithAllowedOrigins("https://dash.example:8443"))
		readMessage(t, hs.dial(t, origin("https://dash.example:8443")), 5*time.Second)
		_, resp, err := websocket.DefaultDialer.Dial(hs.url(), origin("https://dash.example"))
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("other port: %v, %s; want 403", err, body(resp))
		}
	})
	t.Run("star allows any origin", func(t *testing.T) {
		hs := startHub(t, WithAllowedOrigins("*"))
		readMessage(t, hs.dial(t, origin(foreign)), 5*time.Second)
	})
}

func TestHubPlainGETIsBadRequest(t *testing.T) {
	hs := startHub(t)
	resp, err := http.Get(hs.srv.URL + "/api/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	assertJSONError(t, resp, "websocket")
}

func TestHubIgnoresInvalidJSON(t *testing.T) {
	hs := startHub(t)
	hs.hub.Publish("bad", json.RawMessage(`{not json`))
	hs.hub.Publish("good", json.RawMessage(`2`))
	assertStats(t, readMessage(t, hs.dial(t, nil), 5*time.Second), "snapshot", map[string]string{"good": `2`})
}

// TestHubCountsMessagesAndDrops checks the counts the API exports as
// metrics: messages written, clients gone by reason.
func TestHubCountsMessagesAndDrops(t *testing.T) {
	hs := startHub(t, WithFlushInterval(10*time.Millisecond))
	hs.hub.Publish("a", json.RawMessage(`1`))
	conn := hs.dial(t, nil)
	readMessage(t, conn, 5*time.Second) // the snapshot
	hs.hub.Publish("a", json.RawMessage(`2`))
	readMessage(t, conn, 5*time.Second) // an update
	await.True(t, 5*time.Second, "two messages counted", func() bool { return hs.hub.MessagesSent() == 2 })

	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	await.True(t, 5*time.Second, "the client to be counted as gone", func() bool { return hs.hub.Dropped(DropClientClosed) == 1 })
	if hs.hub.Clients() != 0 {
		t.Errorf("%d clients after the only one closed", hs.hub.Clients())
	}

	other := hs.dial(t, nil)
	readMessage(t, other, 5*time.Second)
	go func() { // answers the close frame of the shutdown
		for {
			if _, _, err := other.ReadMessage(); err != nil {
				return
			}
		}
	}()
	hs.stop(t)
	if got := hs.hub.Dropped(DropShutdown); got != 1 {
		t.Errorf("Dropped(shutdown) = %d after a shutdown with one client, want 1", got)
	}
	for _, r := range []DropReason{DropTooSlow, DropNoPong, DropError} {
		if got := hs.hub.Dropped(r); got != 0 {
			t.Errorf("Dropped(%s) = %d, want 0", r, got)
		}
	}
}
