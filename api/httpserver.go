package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The API's HTTP server defaults. Every request of the API is small and
// answered from memory (a statistic, a page, a thumbnail of ~100 KB), so a
// client that takes seconds to send its headers, or to take the answer, is
// broken or hostile; without these bounds each such connection would hold a
// goroutine and its buffers forever (slowloris; clients that never read).
const (
	// DefaultReadHeaderTimeout bounds the wait for a request's headers.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds reading a whole request, headers and body.
	DefaultReadTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds writing an answer, from the end of the
	// request's headers; it is lifted for the websocket /api/ws, whose hub
	// bounds each of its writes itself.
	DefaultWriteTimeout = 15 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxConns bounds the connections open at once, websockets
	// included (bench/wsload opens 1,000 of them).
	DefaultMaxConns = 4096
)

// HTTPOption configures the server NewHTTPServer returns.
type HTTPOption func(*http.Server)

// HTTPTimeouts are the server's timeouts: how long a client may take to send
// a request's headers (ReadHeader) and the whole request (Read), how long
// writing an answer may take from the end of the request's headers (Write;
// not for the websocket), and how long a keep-alive connection may wait for
// its next request (Idle). A field ≤ 0 keeps its default.
type HTTPTimeouts struct{ ReadHeader, Read, Write, Idle time.Duration }

// WithHTTPTimeouts sets the server's timeouts (defaults:
// DefaultReadHeaderTimeout, DefaultReadTimeout, DefaultWriteTimeout,
// DefaultIdleTimeout).
func WithHTTPTimeouts(t HTTPTimeouts) HTTPOption {
	return func(s *http.Server) {
		for _, f := range []struct {
			field *time.Duration
			value time.Duration
		}{{&s.ReadHeaderTimeout, t.ReadHeader}, {&s.ReadTimeout, t.Read}, {&s.WriteTimeout, t.Write}, {&s.IdleTimeout, t.Idle}} {
			if f.value > 0 {
				*f.field = f.value
			}
		}
	}
}

// NewHTTPServer returns the API's HTTP server for h (Server.Handler): with
// read-header, read, write and idle timeouts, so that slow or idle clients
// are disconnected instead of holding a goroutine each forever. Serve it on
// a listener from LimitConnections, which bounds how many there can be.
//
// The websocket upgrade of /api/ws is served without the read and write
// deadlines: its connection is hijacked and lives for hours, and the hub
// bounds each write (the hub's WithWriteTimeout) and each wait for a pong
// itself. Every other request keeps them.
func NewHTTPServer(h http.Handler, opts ...HTTPOption) *http.Server {
	s := &http.Server{
		Handler:           withoutDeadlinesForWebsocket(h),
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    64 << 10, // requests are a path and a few headers
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// websocketPath is the hub's route in Server.Handler.
const websocketPath = "/api/ws"

// withoutDeadlinesForWebsocket clears the connection's read and write
// deadlines, which the server set from ReadTimeout and WriteTimeout, before
// a websocket upgrade of /api/ws: otherwise the hijacked connection would
// fail its first read or write after they pass. gorilla/websocket v1.5.3's
// Upgrade clears them too once it has hijacked the connection; this does not
// depend on it. Only upgrades are exempt: a plain GET of /api/ws (a 400)
// keeps the deadlines.
func withoutDeadlinesForWebsocket(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == websocketPath && websocket.IsWebSocketUpgrade(r) {
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Time{})  // the hub's reader sets its pong deadline
			_ = rc.SetWriteDeadline(time.Time{}) // the hub sets one per write
		}
		next.ServeHTTP(w, r)
	})
}

// ConnLimiter is a listener that keeps at most a given number of
// connections open; see LimitConnections.
type ConnLimiter struct {
	net.Listener
	max       int
	logger    *slog.Logger
	open      atomic.Int64
	rejected  atomic.Int64
	rejecting chan struct{} // a slot per refusal being answered
	lastWarn  atomic.Int64  // unix nanoseconds of the last warning
	reply     []byte
}

// rejectWait bounds how long a refused connection is kept to answer it.
const rejectWait = 2 * time.Second

// LimitConnections returns ln with at most max connections open at once
// (max < 1: DefaultMaxConns). A connection counts from Accept until it is
// closed, hijacked ones (websockets) included.
//
// Beyond the bound, a new connection is still accepted, answered with a 503
// and {"error":"too many connections (limit N)"} as soon as its request's
// headers are in (or after a second without them), and closed: a client
// learns at once that the server is full, rather than waiting in the
// kernel's accept backlog with no answer until its own timeout, and the
// backlog stays free. At most 256 such answers are in progress at a time;
// beyond that, connections are closed without one. Refusals are logged as a
// warning at most every 10 s, with their count (logger nil: slog.Default()).
func LimitConnections(ln net.Listener, max int, logger *slog.Logger) *ConnLimiter {
	if max < 1 {
		max = DefaultMaxConns
	}
	if logger == nil {
		logger = slog.Default()
	}
	body := fmt.Sprintf(`{"error":"too many connections (limit %d)"}`+"\n", max)
	reply := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\n"+
		"Content-Type: application/json\r\nCache-Control: no-store\r\nRetry-After: 1\r\n"+
		"Connection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return &ConnLimiter{Listener: ln, max: max, logger: logger,
		rejecting: make(chan struct{}, 256), reply: []byte(reply)}
}

// Open returns the number of connections open now.
func (l *ConnLimiter) Open() int { return int(l.open.Load()) }

// Rejected returns the number of connections refused so far.
func (l *ConnLimiter) Rejected() int64 { return l.rejected.Load() }

// Max returns the bound.
func (l *ConnLimiter) Max() int { return l.max }

// Accept returns the next connection within the bound, refusing those
// beyond it on the way.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= int64(l.max) {
			return &limitedConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
		}
		l.open.Add(-1)
		l.refuse(c)
	}
}

func (l *ConnLimiter) refuse(c net.Conn) {
	n := l.rejected.Add(1)
	if now, last := time.Now().UnixNano(), l.lastWarn.Load(); now-last > int64(10*time.Second) && l.lastWarn.CompareAndSwap(last, now) {
		l.logger.Warn("api: too many connections; refusing new ones with 503 (raise --max-conns?)",
			"limit", l.max, "refused_so_far", n)
	}
	select {
	case l.rejecting <- struct{}{}:
	default: // answering too many refusals already: just close
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-l.rejecting }()
		defer c.Close()
		// Wait for the request's headers first (at most half of rejectWait):
		// a client that gets an answer before it has sent its request may
		// take it for a broken connection (Go's http.Transport does).
		_ = c.SetDeadline(time.Now().Add(rejectWait / 2))
		readHeaders(c)
		_ = c.SetDeadline(time.Now().Add(rejectWait / 2))
		if _, err := c.Write(l.reply); err != nil {
			return
		}
		// Half-close, then read what the client sent until it closes: closing
		// with its request unread would reset the connection, and the client
		// could lose the answer.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// readHeaders reads from c until the end of a request's headers, 8 KiB,
// the end of the input or the deadline, whichever comes first.
func readHeaders(c net.Conn) {
	buf := make([]byte, 8<<10)
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if bytes.Contains(buf[:n], []byte("\r\n\r\n")) || bytes.Contains(buf[:n], []byte("\n\n")) || err != nil {
			return
		}
	}
}

// limitedConn gives its slot back when it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite and ReadFrom keep what net/http uses of a *net.TCPConn: the
// half-close before closing with unread input, and sendfile for pictures.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
