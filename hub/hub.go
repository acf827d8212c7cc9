// Package hub fans statistic results out to websocket clients: a snapshot
// of every statistic on connect, then coalesced updates, with a rate cap,
// subscriptions, per-client buffers that drop slow clients, pings, and a
// bounded shutdown. It knows nothing of Kafka or of picstats' statistics: a
// result is a topic name and a JSON value.
package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Hub pushes statistic results to websocket clients: on connect a client gets a
// snapshot of every statistic, then every change, coalesced per statistic.
//
// Messages are JSON text frames:
//
//	{"v":1,"type":"snapshot","stats":{"<name>":<result>,...}}   first, every statistic published so far
//	{"v":1,"type":"update","stats":{"<name>":<result>,...}}     then only the statistics that changed
//	{"v":1,"type":"error","error":"..."}                        a subscription refused
//
// Subscriptions: a client that says nothing gets the topics of Publish, the
// default ones. A client may instead send
//
//	{"v":1,"type":"subscribe","stats":["<topic>",...]}
//
// to get exactly those topics: default ones and on-demand ones, whose values
// come from Offer and exist only while some client wants them (Demanded).
// The hub answers with a snapshot of those topics and from then on sends
// only their updates; "stats" left out goes back to the default topics. A
// subscription the hub's Subscriptions refuses is answered with an error
// message and changes nothing.
//
// Rate cap: Publish only records the latest result. The hub sends at most one
// update per flush interval (WithFlushInterval, 100ms by default), carrying
// the latest value of every statistic changed since the previous one, so a
// burst of publishes costs each client one message, not one per publish. The
// first change after a quiet period is sent at once; the rest of that interval
// waits for the next flush.
//
// Buffer: each client has a queue of WithClientBuffer update messages (16 by
// default) in front of its own writer goroutine. Since at most one update is
// queued per flush interval, a client may fall that many intervals behind
// (1.6s at the defaults) before the queue is full; the hub then drops it
// (close code 1013, "too slow") rather than block Publish or the other
// clients. A dropped dashboard reconnects and gets a fresh snapshot, which is
// all it needs: updates are idempotent "latest value" messages.
//
// Run must be running for updates to be sent and for a clean shutdown.
type Hub struct {
	flushInterval time.Duration
	pingInterval  time.Duration
	writeTimeout  time.Duration
	clientBuffer  int
	anyOrigin     bool
	origins       map[string]bool
	logger        *slog.Logger
	upgrader      websocket.Upgrader

	subs Subscriptions

	wake chan struct{}  // a Publish happened; capacity 1, so signals merge
	wg   sync.WaitGroup // one per client writer, for Run's shutdown

	// sendMu orders what flush and a subscription queue for clients: an
	// update for a client's old topics never follows the snapshot of its new
	// ones. Taken before mu.
	sendMu sync.Mutex

	mu      sync.Mutex
	seq     uint64                     // counts Publish and Offer calls; orders values against snapshots
	latest  map[string]json.RawMessage // default topics: what a new client's snapshot holds
	offered map[string]json.RawMessage // on-demand topics' latest values, while demanded
	demand  map[string]int             // subscribed topics → how many clients want them
	dirty   map[string]published       // changed since the last flush
	clients map[*hubClient]struct{}    // receiving updates
	pending time.Time                  // when dirty last went from empty to not; zero while empty
	live    map[*hubClient]struct{}    // writer running, dropped or not: what shutdown may cut off
	closed  bool                       // Run has shut down; refuse new clients

	sent    atomic.Uint64                   // messages written to clients: snapshots and updates
	dropped [len(DropReasons)]atomic.Uint64 // clients gone, by DropReasons index
}

// DropReason is why a client left the hub, a bounded set (metric labels).
type DropReason string

// The reasons a client leaves.
const (
	DropTooSlow      DropReason = "too_slow"      // its queue of updates was full
	DropNoPong       DropReason = "no_pong"       // it answered no ping in time
	DropClientClosed DropReason = "client_closed" // it closed the connection
	DropError        DropReason = "error"         // reading or writing failed
	DropShutdown     DropReason = "shutdown"      // the server shut down
)

// DropReasons lists every DropReason.
var DropReasons = [...]DropReason{DropTooSlow, DropNoPong, DropClientClosed, DropError, DropShutdown}

// MessagesSent returns the number of messages (snapshots and updates)
// written to clients so far.
func (h *Hub) MessagesSent() uint64 { return h.sent.Load() }

// Dropped returns the number of clients that left so far for reason.
func (h *Hub) Dropped(reason DropReason) uint64 {
	for i, r := range DropReasons {
		if r == reason {
			return h.dropped[i].Load()
		}
	}
	return 0
}

type published struct {
	value    json.RawMessage
	seq      uint64
	onDemand bool // from Offer: not for clients on the default topics
}

// subscription is a client's chosen topics; nil means the default ones.
// It is never changed, only replaced.
type subscription struct {
	key    string // the topics, sorted, one per line: clients with the same key share messages
	topics map[string]bool
}

func (sub *subscription) wants(name string, p published) bool {
	if sub == nil {
		return !p.onDemand
	}
	return sub.topics[name]
}

// Subscriptions decides which topics clients may subscribe to and provides
// the values of on-demand topics.
type Subscriptions interface {
	// Subscribe is called, without the hub's locks, when a client asks for
	// topics. It returns an error that says what is wrong if any of them is
	// not one a client may have (the client's subscription then stays as it
	// was). Otherwise it should Offer the current value of each on-demand
	// topic it can: the hub counts them as demanded before the call and
	// builds the client's snapshot right after it.
	Subscribe(topics []string) error
}

// Limits of a subscription message.
const (
	MaxTopics      = 256
	maxTopicLength = 512
	maxClientFrame = 64 << 10
)

type hubClient struct {
	conn   *websocket.Conn
	remote string
	since  uint64        // hub seq at registration or subscription: the snapshot already holds every value up to it
	sub    *subscription // nil: the default topics
	send   chan []byte   // encoded updates for the writer

	quitOnce sync.Once
	quit     chan struct{} // closed when the client is dropped
	code     int           // close code to send when quit; 0: just close the connection
	reason   string

	readDone chan struct{} // closed when the reader has stopped
}

// Option configures a Hub.
type Option func(*Hub)

// WithAllowedOrigins allows browsers from these origins, given as exact
// "scheme://host[:port]" values, or "*" for any, on top of same-origin pages
// and clients that send no Origin (non-browser clients).
func WithAllowedOrigins(origins ...string) Option {
	return func(h *Hub) {
		for _, o := range origins {
			o = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(o), "/"))
			switch o {
			case "":
			case "*":
				h.anyOrigin = true
			default:
				h.origins[o] = true
			}
		}
	}
}

// WithFlushInterval sets the per-client rate cap: at most one update per
// interval (default 100ms). Values ≤ 0 keep the default.
func WithFlushInterval(d time.Duration) Option {
	return func(h *Hub) {
		if d > 0 {
			h.flushInterval = d
		}
	}
}

// WithClientBuffer sets how many messages may be queued for a client before
// it is dropped as too slow (default 16). Values ≤ 0 keep the default.
func WithClientBuffer(n int) Option {
	return func(h *Hub) {
		if n > 0 {
			h.clientBuffer = n
		}
	}
}

// WithPingInterval sets how often clients are pinged (default 20s); a client
// that sends no pong for 2.5 intervals is dropped. Values ≤ 0 keep the default.
func WithPingInterval(d time.Duration) Option {
	return func(h *Hub) {
		if d > 0 {
			h.pingInterval = d
		}
	}
}

// WithWriteTimeout bounds every write to a client, and how long shutdown waits
// for clients to acknowledge the close (default 5s). Values ≤ 0 keep the default.
func WithWriteTimeout(d time.Duration) Option {
	return func(h *Hub) {
		if d > 0 {
			h.writeTimeout = d
		}
	}
}

// WithSubscriptions sets what checks the clients' subscriptions and
// offers on-demand values (default: any topic may be subscribed to; only
// values offered while it is demanded are sent).
func WithSubscriptions(subs Subscriptions) Option {
	return func(h *Hub) { h.subs = subs }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(h *Hub) {
		if l != nil {
			h.logger = l
		}
	}
}

// New returns a hub; start it with Run and serve it with ServeHTTP.
func New(opts ...Option) *Hub {
	h := &Hub{
		flushInterval: 100 * time.Millisecond,
		pingInterval:  20 * time.Second,
		writeTimeout:  5 * time.Second,
		clientBuffer:  16,
		origins:       map[string]bool{},
		logger:        slog.Default(),
		wake:          make(chan struct{}, 1),
		latest:        map[string]json.RawMessage{},
		offered:       map[string]json.RawMessage{},
		demand:        map[string]int{},
		dirty:         map[string]published{},
		clients:       map[*hubClient]struct{}{},
		live:          map[*hubClient]struct{}{},
	}
	for _, o := range opts {
		o(h)
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: h.writeTimeout,
		// ServeHTTP has checked the origin already, to answer with a JSON error.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeError(w, status, fmt.Sprintf("websocket upgrade: %v", reason))
		},
	}
	return h
}

// Publish records the latest result of a statistic; clients get it with the
// next flush. It is safe for concurrent use and never blocks on clients.
// Results that are not valid JSON are logged and ignored.
func (h *Hub) Publish(name string, result json.RawMessage) {
	if !json.Valid(result) {
		// Sending it would break every client's message, not just this statistic.
		h.logger.Error("websocket hub: not publishing an invalid JSON result", "stat", name)
		return
	}
	v := bytes.Clone(result) // the caller may reuse its buffer
	h.mu.Lock()
	h.latest[name] = v
	h.changed(name, v, false)
	h.mu.Unlock()
	h.wakeRun()
}

// changed marks a new value for the next flush. The caller holds mu.
func (h *Hub) changed(name string, v json.RawMessage, onDemand bool) {
	h.seq++
	if len(h.dirty) == 0 {
		h.pending = time.Now()
	}
	h.dirty[name] = published{v, h.seq, onDemand}
}

func (h *Hub) wakeRun() {
	select {
	case h.wake <- struct{}{}:
	default: // a flush is already due
	}
}

// Offer records the latest value of an on-demand topic; the clients
// subscribed to it get it with the next flush. A topic no client demands,
// and a value equal to the one offered before, are ignored, so a caller may
// offer what it recomputes without checking what changed.
func (h *Hub) Offer(name string, result json.RawMessage) {
	if !json.Valid(result) {
		h.logger.Error("websocket hub: not offering an invalid JSON result", "topic", name)
		return
	}
	h.mu.Lock()
	if h.demand[name] == 0 || bytes.Equal(h.offered[name], result) {
		h.mu.Unlock()
		return
	}
	v := bytes.Clone(result)
	h.offered[name] = v
	h.changed(name, v, true)
	h.mu.Unlock()
	h.wakeRun()
}

// Demanded returns the topics some client is subscribed to, sorted.
func (h *Hub) Demanded() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.demand))
}

// want adds n (±1) clients' demand for topics; a topic no one wants any
// more loses its offered value. The caller holds mu.
func (h *Hub) want(sub *subscription, n int) {
	if sub == nil {
		return
	}
	for t := range sub.topics {
		h.demand[t] += n
		if h.demand[t] <= 0 {
			delete(h.demand, t)
			delete(h.offered, t)
		}
	}
}

// Clients returns the number of connected clients.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Stalled returns how long published changes have waited for a flush
// beyond the flush interval: more than a moment only if Run does not run or
// is stuck. It is 0 while nothing waits.
func (h *Hub) Stalled() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending.IsZero() {
		return 0
	}
	return max(0, time.Since(h.pending)-h.flushInterval)
}

// Run sends the coalesced updates until ctx is done, then closes every client
// with 1001 (going away), waits for them at most the write timeout, and
// returns nil. Call it once.
func (h *Hub) Run(ctx context.Context) error {
	rest := time.NewTimer(h.flushInterval)
	rest.Stop()
	for {
		select {
		case <-ctx.Done():
			h.shutdown()
			return nil
		case <-h.wake:
		}
		h.flush()
		// The rate cap: publishes during this interval wait for the next flush.
		rest.Reset(h.flushInterval)
		select {
		case <-ctx.Done():
			h.shutdown()
			return nil
		case <-rest.C:
		}
	}
}

// flush queues one update with every changed statistic for every client
// that wants it.
func (h *Hub) flush() {
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	h.mu.Lock()
	if len(h.dirty) == 0 {
		h.mu.Unlock()
		return
	}
	changed := h.dirty
	h.dirty = map[string]published{}
	h.pending = time.Time{}
	// Taken with the changes, under the same lock: a client registered after
	// this point has a snapshot at least as new, and must not get this update.
	type target struct {
		c     *hubClient
		since uint64
		sub   *subscription
	}
	targets := make([]target, 0, len(h.clients))
	for c := range h.clients {
		targets = append(targets, target{c, c.since, c.sub})
	}
	h.mu.Unlock()

	oldest := uint64(0)
	for _, p := range changed {
		if oldest == 0 || p.seq < oldest {
			oldest = p.seq
		}
	}
	// The update of clients older than every change, per subscription:
	// nearly every client shares one.
	shared := map[string][]byte{}
	for _, t := range targets {
		var msg []byte
		if t.since < oldest {
			key := "\x00default"
			if t.sub != nil {
				key = t.sub.key
			}
			var ok bool
			if msg, ok = shared[key]; !ok {
				msg = h.encode("update", changed, 0, t.sub)
				shared[key] = msg
			}
		} else {
			// Registered during this interval: its snapshot holds some of
			// these values already; send only the newer ones, if any.
			msg = h.encode("update", changed, t.since, t.sub)
		}
		if msg != nil {
			h.queue(t.c, msg)
		}
	}
}

// queue hands a message to the client's writer, or drops the client if its
// queue is full.
func (h *Hub) queue(c *hubClient, msg []byte) {
	select {
	case c.send <- msg:
	default:
		h.drop(c, DropTooSlow, websocket.CloseTryAgainLater,
			fmt.Sprintf("too slow: %d updates queued", cap(c.send)))
	}
}

type hubMessage struct {
	V     int                        `json:"v"`
	Type  string                     `json:"type"`
	Stats map[string]json.RawMessage `json:"stats"`
}

// encode returns the message for the changes published after seq since
// that sub wants, or nil if there are none.
func (h *Hub) encode(typ string, changed map[string]published, since uint64, sub *subscription) []byte {
	stats := make(map[string]json.RawMessage, len(changed))
	for name, p := range changed {
		if p.seq > since && sub.wants(name, p) {
			stats[name] = p.value
		}
	}
	if len(stats) == 0 {
		return nil
	}
	return h.marshal(typ, stats)
}

func (h *Hub) marshal(typ string, stats map[string]json.RawMessage) []byte {
	if stats == nil {
		stats = map[string]json.RawMessage{} // "stats":{} rather than null
	}
	b, err := json.Marshal(hubMessage{V: 1, Type: typ, Stats: stats})
	if err != nil {
		// Publish only accepts valid JSON, so this is a bug.
		h.logger.Error("websocket hub: encoding a message", "type", typ, "err", err)
		return nil
	}
	return b
}

// ServeHTTP upgrades the request (GET /api/ws) to a websocket and serves the
// client until it leaves or is dropped.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest,
			"this endpoint only speaks websocket: connect with a websocket client (GET with Connection: Upgrade and Upgrade: websocket)")
		return
	}
	if !h.originAllowed(r) {
		origin := r.Header.Get("Origin")
		writeError(w, http.StatusForbidden, fmt.Sprintf(
			"websocket from origin %q refused: it is not %s's own origin; to allow it start the server with --allowed-origins=%s (or --allowed-origins='*' for any origin)",
			origin, r.Host, origin))
		return
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		writeError(w, http.StatusServiceUnavailable, "the server is shutting down; reconnect later")
		return
	}

	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered the client already.
		h.logger.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := &hubClient{
		conn:     conn,
		remote:   r.RemoteAddr,
		send:     make(chan []byte, h.clientBuffer),
		quit:     make(chan struct{}),
		readDone: make(chan struct{}),
	}

	// Snapshot and registration under one lock: every Publish is either in
	// the snapshot or in an update this client will get, never both out of
	// order.
	h.mu.Lock()
	if h.closed { // shut down since the check above
		h.mu.Unlock()
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"),
			time.Now().Add(h.writeTimeout))
		_ = conn.Close()
		return
	}
	snapshot := maps.Clone(h.latest)
	c.since = h.seq
	h.clients[c] = struct{}{}
	h.live[c] = struct{}{}
	h.wg.Add(1)
	n := len(h.clients)
	h.mu.Unlock()

	h.logger.Info("websocket client connected", "remote", c.remote, "origin", r.Header.Get("Origin"), "clients", n)
	go h.read(c)
	h.write(c, h.marshal("snapshot", snapshot))
}

// originAllowed: browsers send Origin and enforce nothing for websockets, so
// without this check any web page could read the statistics through a
// visitor's browser.
func (h *Hub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || h.anyOrigin {
		return true // not a browser, or everyone is allowed
	}
	if h.origins[strings.ToLower(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// drop removes the client and tells its writer to close the connection with
// code (0: without a close frame). Only the first reason counts.
func (h *Hub) drop(c *hubClient, kind DropReason, code int, reason string) {
	h.mu.Lock()
	if _, ok := h.clients[c]; ok { // counted once, by whoever removes it, before Clients drops
		for i, r := range DropReasons {
			if r == kind {
				h.dropped[i].Add(1)
			}
		}
		h.want(c.sub, -1)
	}
	delete(h.clients, c)
	n := len(h.clients)
	h.mu.Unlock()
	c.quitOnce.Do(func() {
		c.code, c.reason = code, reason
		close(c.quit)
		h.logger.Info("websocket client dropped", "remote", c.remote, "reason", reason, "clients", n)
	})
}

// read handles what the client sends — subscriptions, and the control
// frames gorilla processes while reading (pong, close) — and drops the
// client when the connection fails or stops answering pings.
func (h *Hub) read(c *hubClient) {
	defer close(c.readDone)
	pongWait := h.pingInterval * 5 / 2
	c.conn.SetReadLimit(maxClientFrame)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	for {
		typ, r, err := c.conn.NextReader()
		if err != nil {
			var reason string
			kind := DropError
			var ne net.Error
			switch {
			case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway):
				reason, kind = "client closed the connection", DropClientClosed
			case errors.As(err, &ne) && ne.Timeout():
				reason, kind = fmt.Sprintf("no pong within %v", pongWait), DropNoPong
			default:
				reason = fmt.Errorf("read: %w", err).Error()
			}
			h.drop(c, kind, 0, reason)
			return
		}
		if typ != websocket.TextMessage {
			continue
		}
		if err := h.handle(c, r); err != nil {
			h.queue(c, h.errorMessage(err))
		}
	}
}

// clientMessage is what a client may send.
type clientMessage struct {
	V     int       `json:"v"`
	Type  string    `json:"type"`
	Stats *[]string `json:"stats"` // nil: the default topics
}

// handle carries out one message of the client.
func (h *Hub) handle(c *hubClient, r io.Reader) error {
	var m clientMessage
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf(`not a message this server understands (%v): send {"v":1,"type":"subscribe","stats":["<topic>",...]}`, err)
	}
	if m.V != 1 || m.Type != "subscribe" {
		return fmt.Errorf(`message v=%d type=%q not understood: send {"v":1,"type":"subscribe","stats":["<topic>",...]}`, m.V, m.Type)
	}
	var sub *subscription
	if m.Stats != nil {
		topics := *m.Stats
		if len(topics) > MaxTopics {
			return fmt.Errorf("subscription of %d topics: at most %d", len(topics), MaxTopics)
		}
		sub = &subscription{topics: make(map[string]bool, len(topics))}
		for _, t := range topics {
			if t == "" || len(t) > maxTopicLength {
				return fmt.Errorf("topic %.40q: want a name of 1 to %d bytes", t, maxTopicLength)
			}
			sub.topics[t] = true
		}
		sub.key = strings.Join(slices.Sorted(maps.Keys(sub.topics)), "\n")
	}
	return h.subscribe(c, sub)
}

// subscribe replaces the client's topics by sub's and queues the snapshot
// of them.
func (h *Hub) subscribe(c *hubClient, sub *subscription) error {
	h.mu.Lock()
	h.want(sub, 1) // before Subscribe, so that its offers are kept
	h.mu.Unlock()
	if sub != nil && h.subs != nil {
		if err := h.subs.Subscribe(slices.Sorted(maps.Keys(sub.topics))); err != nil {
			h.mu.Lock()
			h.want(sub, -1)
			h.mu.Unlock()
			return err
		}
	}
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	h.mu.Lock()
	if _, ok := h.clients[c]; !ok { // dropped meanwhile: its demand is gone
		h.want(sub, -1)
		h.mu.Unlock()
		return nil
	}
	h.want(c.sub, -1)
	c.sub, c.since = sub, h.seq
	snapshot := map[string]json.RawMessage{}
	if sub == nil {
		maps.Copy(snapshot, h.latest)
	} else {
		for t := range sub.topics {
			if v, ok := h.latest[t]; ok {
				snapshot[t] = v
			} else if v, ok := h.offered[t]; ok {
				snapshot[t] = v
			}
		}
	}
	h.mu.Unlock()
	h.queue(c, h.marshal("snapshot", snapshot))
	return nil
}

func (h *Hub) errorMessage(err error) []byte {
	b, _ := json.Marshal(struct {
		V     int    `json:"v"`
		Type  string `json:"type"`
		Error string `json:"error"`
	}{1, "error", err.Error()})
	return b
}

// write is the client's only writer (gorilla allows one): the snapshot, then
// the queued updates and pings, each with a deadline; on quit, the close frame.
func (h *Hub) write(c *hubClient, snapshot []byte) {
	defer func() {
		_ = c.conn.Close()
		h.mu.Lock()
		delete(h.live, c)
		h.mu.Unlock()
		h.wg.Done()
	}()
	ping := time.NewTicker(h.pingInterval)
	defer ping.Stop()

	if err := h.writeText(c, snapshot); err != nil {
		h.drop(c, DropError, 0, fmt.Errorf("write snapshot: %w", err).Error())
		return
	}
	for {
		select { // quit first: a dropped client gets nothing more
		case <-c.quit:
			h.closeHandshake(c)
			return
		default:
		}
		select {
		case <-c.quit:
			h.closeHandshake(c)
			return
		case msg := <-c.send:
			if err := h.writeText(c, msg); err != nil {
				h.drop(c, DropError, 0, fmt.Errorf("write update: %w", err).Error())
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.writeTimeout)); err != nil {
				h.drop(c, DropError, 0, fmt.Errorf("write ping: %w", err).Error())
				return
			}
		}
	}
}

func (h *Hub) writeText(c *hubClient, msg []byte) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(h.writeTimeout)); err != nil {
		return err
	}
	if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		return err
	}
	h.sent.Add(1)
	return nil
}

// closeHandshake sends the close frame and waits, bounded, for the client's
// answer: closing the TCP connection at once could reset it before the
// client has read the frame.
func (h *Hub) closeHandshake(c *hubClient) {
	if c.code == 0 {
		return
	}
	err := c.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(c.code, c.reason), time.Now().Add(h.writeTimeout))
	if err != nil {
		return
	}
	t := time.NewTimer(h.writeTimeout)
	defer t.Stop()
	select {
	case <-c.readDone: // the reader got the client's close frame, or failed
	case <-t.C:
	}
}

// shutdown refuses new clients, closes the connected ones with 1001 and waits
// for their writers; those still stuck after the write timeout are cut off.
func (h *Hub) shutdown() {
	h.mu.Lock()
	h.closed = true
	clients := slices.Collect(maps.Keys(h.clients))
	h.mu.Unlock()
	for _, c := range clients {
		h.drop(c, DropShutdown, websocket.CloseGoingAway, "server shutting down")
	}

	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(h.writeTimeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	h.logger.Warn("websocket hub: clients did not close in time; cutting them off", "after", h.writeTimeout)
	h.mu.Lock()
	live := slices.Collect(maps.Keys(h.live)) // includes clients dropped before the shutdown
	h.mu.Unlock()
	for _, c := range live {
		_ = c.conn.Close() // fails their pending reads and writes; safe concurrently
	}
	<-done
}

// writeError answers with a JSON error, as the rest of the API does.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg}) // the client may have gone
}
