package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/stats"
)

// httpFixture is the real API handler, with a table of values and a
// folder of pictures, served by NewHTTPServer on a real TCP listener
// bounded by LimitConnections.
type httpFixture struct {
	api  *Server
	lim  *ConnLimiter
	srv  *http.Server
	addr string // host:port
}

func (f *httpFixture) url(path string) string { return "http://" + f.addr + path }

// bigPicture is the name of the 256 KiB picture every fixture serves: its
// answers fill a client's socket buffers after a dozen or so.
const bigPicture = "000000000001.jpg"

func startHTTP(t *testing.T, maxConns int, opts ...HTTPOption) *httpFixture {
	t.Helper()
	regs := []codec.Registration{{PictureID: "a", Weight: 100}, {PictureID: "b", Weight: 300}}
	s := New(stats.All(), slog.New(slog.DiscardHandler))
	s.SetTable(mapTable{recovered: true, values: map[string][]byte{
		"count":          encoded(t, "count", regs...),
		"average_weight": encoded(t, "average_weight", regs...),
	}})
	s.MarkRecovered() // as RunView does once the View runs
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, bigPicture), []byte(strings.Repeat("x", 256<<10)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.ServeImages(dir)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &httpFixture{api: s, lim: LimitConnections(ln, maxConns, slog.New(slog.DiscardHandler)),
		srv: NewHTTPServer(s.Handler(), opts...), addr: ln.Addr().String()}
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(f.lim) }()
	t.Cleanup(func() {
		_ = f.srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

// closedByPeer tells whether a read or write error means the other end
// closed the connection (EOF, reset, broken pipe), and not a local
// deadline or close.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// attackers are bad clients that reconnect as soon as the server drops
// them, until stop is closed; then each leaves its last connection open,
// and ends only when the server has closed that one too.
type attackers struct {
	addr string
	stop chan struct{}
	wg   sync.WaitGroup

	closedByServer atomic.Int64 // connections the server closed
	mu             sync.Mutex
	failures       []error // anything else: dial errors, connections ended otherwise
	conns          map[net.Conn]bool
	ending         bool // end has closed the connections; close new ones at once
	stopOnce       sync.Once
}

func newAttackers(addr string) *attackers {
	return &attackers{addr: addr, stop: make(chan struct{}), conns: map[net.Conn]bool{}}
}

func (a *attackers) fail(err error) {
	a.mu.Lock()
	a.failures = append(a.failures, err)
	a.mu.Unlock()
}

func (a *attackers) stopped() bool {
	select {
	case <-a.stop:
		return true
	default:
		return false
	}
}

// run calls attack with a new connection each time the previous one has
// been closed by the server, until stop.
func (a *attackers) run(n int, attack func(net.Conn) error) {
	for range n {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for !a.stopped() {
				c, err := net.Dial("tcp", a.addr)
				if err != nil {
					a.fail(fmt.Errorf("dial: %w", err))
					return
				}
				a.mu.Lock()
				a.conns[c] = true
				if a.ending {
					_ = c.Close()
				}
				a.mu.Unlock()
				err = attack(c)
				_ = c.Close()
				a.mu.Lock()
				delete(a.conns, c)
				a.mu.Unlock()
				if !closedByPeer(err) {
					a.fail(fmt.Errorf("connection ended with %v, want the server to close it (EOF, reset, broken pipe)", err))
					return
				}
				a.closedByServer.Add(1)
			}
		}()
	}
}

func (a *attackers) stopAttack() { a.stopOnce.Do(func() { close(a.stop) }) }

// end stops the attack, closes its connections from the client side and
// waits for the attackers: the cleanup, for a failed test too.
func (a *attackers) end() {
	a.stopAttack()
	a.mu.Lock()
	a.ending = true
	for c := range a.conns {
		_ = c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// slowloris sends a request's headers one byte a second and never finishes
// them; it returns the error that ended the connection, as its reader saw
// it. It goes on dribbling after stop: only the server may end it.
func slowloris(c net.Conn) error {
	ended := make(chan error, 1)
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				ended <- err
				return
			}
		}
	}()
	const start = "GET /api/stats HTTP/1.1\r\nHost: picstats\r\nX-Slow: " // then a value that never ends
	tick := time.NewTicker(time.Second)                                   // the pace of the attack, not a wait for anything
	defer tick.Stop()
	for i := 0; ; i++ {
		_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
		b := byte('a')
		if i < len(start) {
			b = start[i]
		}
		if _, err := c.Write([]byte{b}); err != nil && !closedByPeer(err) {
			return err
		}
		select {
		case err := <-ended:
			return err
		case <-tick.C:
		}
	}
}

// neverReads pipelines requests for the big picture and never reads an
// answer: the server's writes block once the socket buffers are full. It
// goes on sending a request every 100 ms, which fails once the server has
// closed the connection.
func neverReads(c net.Conn) error {
	req := []byte("GET /images/" + bigPicture + " HTTP/1.1\r\nHost: picstats\r\n\r\n")
	burst := slices.Concat(slices.Repeat([][]byte{req}, 32)...) // 8 MiB of answers: more than the buffers hold
	_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write(burst); err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond) // the pace of the attack
	defer tick.Stop()
	for range tick.C {
		_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err := c.Write(req); err != nil {
			return err
		}
	}
	return nil
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC() // the second empties the sync.Pools' victim caches (net/http's buffers)
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// A few hundred slow or idle connections (slowloris; clients that pipeline
// requests and never read) do not stop a normal client from getting
// /api/stats; the server closes them itself, and its goroutines and heap
// return to their baseline afterwards. Without the read-header and write
// timeouts the server never closes them and this fails.
func TestHTTPServerHoldsAgainstSlowAndIdleClients(t *testing.T) {
	const (
		headerTimeout = 2 * time.Second
		writeTimeout  = 2 * time.Second
		slowClients   = 200
		deafClients   = 100
		bound         = 3 * time.Second // per normal request: generous, for a busy machine
	)
	f := startHTTP(t, 1000,
		WithHTTPTimeouts(HTTPTimeouts{ReadHeader: headerTimeout, Read: 2 * headerTimeout, Write: writeTimeout, Idle: 5 * time.Second}))

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: bound}
	get := func() (time.Duration, error) {
		start := time.Now()
		resp, err := client.Get(f.url("/api/stats"))
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"count":{"registrations":2}`) {
			return 0, fmt.Errorf("GET /api/stats: %d %.200s", resp.StatusCode, b)
		}
		return took, nil
	}
	if _, err := get(); err != nil { // warm up: the first request allocates what every later one reuses
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	await.True(t, 10*time.Second, "the warm-up connection to close", func() bool { return f.lim.Open() == 0 })
	baseGoroutines, baseHeap := runtime.NumGoroutine(), heapInUse()

	a := newAttackers(f.addr)
	defer a.end()
	a.run(slowClients, slowloris)
	a.run(deafClients, neverReads)
	await.True(t, 30*time.Second, fmt.Sprintf("the server to accept the %d bad connections", slowClients+deafClients),
		func() bool { return f.lim.Open() >= slowClients+deafClients })
	peakGoroutines, peakHeap := runtime.NumGoroutine(), heapInUse()

	// Normal requests, until the server has closed a full round of bad
	// connections (which reconnected at once): the attack went on throughout.
	var took []time.Duration
	minOpen := f.lim.Open()
	const roundWithin = headerTimeout + writeTimeout + 60*time.Second
	deadline := time.Now().Add(roundWithin)
	for len(took) < 20 || a.closedByServer.Load() < slowClients+deafClients {
		if time.Now().After(deadline) {
			t.Fatalf("after %v and %d normal requests the server has closed only %d of the %d bad connections (are the read-header and write timeouts set?)",
				roundWithin, len(took), a.closedByServer.Load(), slowClients+deafClients)
		}
		d, err := get()
		if err != nil {
			t.Fatalf("normal request %d during the attack (%d connections open): %v", len(took)+1, f.lim.Open(), err)
		}
		took = append(took, d)
		minOpen = min(minOpen, f.lim.Open())
		time.Sleep(50 * time.Millisecond) // the normal client's pace
	}
	t.Logf("%d normal GET /api/stats during the attack: median %v, max %v; the server held %d to %d connections and closed %d bad ones",
		len(took), median(took), slices.Max(took), minOpen, f.lim.Open(), a.closedByServer.Load())

	// The attackers stop reconnecting but leave their last connections open:
	// the server must close every one of them by itself.
	a.stopAttack()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(headerTimeout + writeTimeout + 30*time.Second):
		a.mu.Lock()
		n := len(a.conns)
		a.mu.Unlock()
		t.Fatalf("the server still holds %d bad connections %v after the attack stopped (are the read-header and write timeouts set?)",
			n, headerTimeout+writeTimeout+30*time.Second)
	}
	if len(a.failures) > 0 {
		t.Fatalf("%d bad connections did not end by the server's hand; first: %v", len(a.failures), a.failures[0])
	}
	tr.CloseIdleConnections()
	await.True(t, 10*time.Second, "the server's count of open connections to fall to 0", func() bool { return f.lim.Open() == 0 })
	t.Logf("the server closed %d bad connections in all", a.closedByServer.Load())

	// Nothing is left behind: goroutines (one per connection at least) and
	// heap (buffers per connection) come back to where they were.
	var g int
	await.True(t, 30*time.Second, fmt.Sprintf("goroutines to return to the baseline of %d", baseGoroutines), func() bool {
		g = runtime.NumGoroutine()
		return g <= baseGoroutines+2
	})
	var heap uint64
	const heapSlack = 2 << 20
	await.True(t, 30*time.Second, fmt.Sprintf("heap in use to return within 2 MiB of its baseline of %d KiB", baseHeap>>10), func() bool {
		heap = heapInUse()
		return heap <= baseHeap+heapSlack
	})
	t.Logf("goroutines: baseline %d, under attack %d, after %d; heap in use: baseline %d KiB, under attack %d KiB, after %d KiB",
		baseGoroutines, peakGoroutines, g, baseHeap>>10, peakHeap>>10, heap>>10)
}

// Beyond the bound a new connection gets a 503 with a JSON error at once
// and is closed; connections count until they close, hijacked websockets
// included; once one closes, a new one is served.
func TestHTTPServerConnectionLimit(t *testing.T) {
	const max = 3
	// Long timeouts: the connections held below must stay until closed.
	f := startHTTP(t, max, WithHTTPTimeouts(HTTPTimeouts{ReadHeader: time.Minute, Read: time.Minute, Idle: time.Minute}))

	// Held: two websockets and a connection that has sent nothing yet.
	ws := make([]*websocket.Conn, 2)
	for i := range ws {
		conn, resp, err := websocket.DefaultDialer.Dial("ws://"+f.addr+"/api/ws", nil)
		if err != nil {
			t.Fatalf("websocket %d: %v (%s)", i, err, body(resp))
		}
		defer conn.Close()
		readFrame(t, conn) // the snapshot: it is being served
		ws[i] = conn
	}
	idle, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	await.True(t, 10*time.Second, fmt.Sprintf("%d open connections", max), func() bool { return f.lim.Open() == max })

	// The next one is answered as soon as it has sent its request, and
	// closed; one that sends nothing gets the answer too.
	refused := func(request string) time.Duration {
		t.Helper()
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: %v, want a 503 answer", max+1, err)
		}
		b, err := io.ReadAll(resp.Body) // to the end: the server closes the connection
		resp.Body.Close()
		took := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable ||
			resp.Header.Get("Content-Type") != "application/json" ||
			string(b) != fmt.Sprintf(`{"error":"too many connections (limit %d)"}`+"\n", max) {
			t.Fatalf("connection %d: %s %s %q (%v), want 503 application/json {\"error\":\"too many connections (limit %d)\"}",
				max+1, resp.Status, resp.Header.Get("Content-Type"), b, err, max)
		}
		if _, err := c.Read(make([]byte, 1)); !closedByPeer(err) {
			t.Errorf("after the 503: %v, want the connection closed", err)
		}
		return took
	}
	took := refused("GET /api/stats HTTP/1.1\r\nHost: picstats\r\n\r\n")
	t.Logf("connection %d: 503 %v after its request", max+1, took)
	if took > 3*time.Second { // generous for a busy machine: it is a millisecond or so
		t.Errorf("the 503 took %v; want it at once", took)
	}
	t.Logf("connection %d sending nothing: 503 after %v", max+1, refused(""))

	// And so is an ordinary client.
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	resp, err := client.Get(f.url("/api/stats"))
	if err != nil {
		t.Fatalf("GET beyond the bound: %v, want a 503 answer", err)
	}
	wantJSONError(t, resp, http.StatusServiceUnavailable, fmt.Sprintf("too many connections (limit %d)", max))
	resp.Body.Close()
	if f.lim.Rejected() != 3 {
		t.Errorf("%d connections refused, want 3", f.lim.Rejected())
	}

	// A websocket leaves: its slot is free for a new client.
	ws[0].Close()
	await.True(t, 10*time.Second, fmt.Sprintf("%d open connections", max-1), func() bool { return f.lim.Open() == max-1 })
	resp, err = client.Get(f.url("/api/stats"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET after a connection closed: %s, want 200", resp.Status)
	}
	client.CloseIdleConnections()
}

// The websocket outlives the server's read and write timeouts: its
// connection is exempt from them; the hub's pings and write deadlines
// bound it instead.
func TestHTTPServerWebsocketOutlivesTimeouts(t *testing.T) {
	const timeout = time.Second
	f := startHTTP(t, 10, WithHTTPTimeouts(HTTPTimeouts{ReadHeader: timeout, Read: timeout, Write: timeout, Idle: timeout}))
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = f.api.Hub().Run(ctx)
	}()
	defer func() { cancel(); <-ran }()

	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+f.addr+"/api/ws", nil)
	if err != nil {
		t.Fatalf("websocket: %v (%s)", err, body(resp))
	}
	defer conn.Close()
	readFrame(t, conn)
	// Past every timeout of the server: a plain connection would be closed
	// by now, its next read and write failing.
	time.Sleep(3 * timeout)
	f.api.Hub().Publish("count", []byte(`{"registrations":3}`))
	if got, want := readFrame(t, conn), `"type":"update","stats":{"count":{"registrations":3}}`; !strings.Contains(got, want) {
		t.Fatalf("websocket message %s, want one containing %s", got, want)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatalf("writing to the server after its timeouts: %v", err)
	}
	if n := f.api.Hub().Clients(); n != 1 {
		t.Fatalf("%d websocket clients, want 1", n)
	}
}

// body describes a failed websocket handshake's answer.
func body(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// readFrame returns the next websocket message (the hub's tests check
// their contents; these only that they arrive).
func readFrame(t *testing.T, conn *websocket.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	return string(b)
}
