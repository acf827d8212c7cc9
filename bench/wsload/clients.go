package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// sample is an update carrying count, read at at (since the run's base).
type sample struct {
	count int64
	at    time.Duration
}

type client struct {
	id        int
	conn      *websocket.Conn
	handshake time.Duration
	done      chan struct{} // the reader stopped
	closing   atomic.Bool   // we are closing: a read error is not a drop

	mu      sync.Mutex
	latest  map[string][]byte // every statistic's latest result; nil until the snapshot
	updates int
	bytes   int64 // snapshot included
	samples []sample
	bad     string // the first protocol error
	err     error  // why the reader stopped, if it did before closing
}

// connectAll opens n clients, concurrency handshakes at a time, and
// returns them in order and why the others failed.
func connectAll(ctx context.Context, url string, n, concurrency int, base time.Time, cache *msgCache) ([]*client, []string) {
	dialer := &websocket.Dialer{HandshakeTimeout: dialTimeout, ReadBufferSize: 16 << 10, WriteBufferSize: 1 << 10}
	var (
		mu       sync.Mutex
		clients  []*client
		failures []string
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, concurrency)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			conn, resp, err := dialer.DialContext(ctx, url, nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if resp != nil {
					err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
				}
				failures = append(failures, err.Error())
				return
			}
			c := &client{id: i, conn: conn, handshake: time.Since(start), done: make(chan struct{})}
			go c.read(cache, base)
			clients = append(clients, c)
		})
	}
	wg.Wait()
	slices.SortFunc(clients, func(a, b *client) int { return a.id - b.id })
	return clients, failures
}

// read reads every message and keeps the latest result of each statistic.
func (c *client) read(cache *msgCache, base time.Time) {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		typ, rd, err := c.conn.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(rd)
		}
		if err != nil {
			if !c.closing.Load() {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
			}
			return
		}
		at := time.Since(base)
		p := &parsed{err: fmt.Errorf("binary message")}
		if typ == websocket.TextMessage {
			p = cache.get(buf.Bytes())
		}
		c.mu.Lock()
		c.bytes += int64(buf.Len())
		bad := ""
		switch {
		case p.err != nil:
			bad = p.err.Error()
		case c.latest == nil && p.typ != "snapshot":
			bad = "first message is not a snapshot"
		case c.latest == nil:
			c.latest = maps.Clone(p.stats)
		case p.typ != "update":
			bad = "a second snapshot"
		default:
			maps.Copy(c.latest, p.stats)
			c.updates++
			if p.hasCount {
				c.samples = append(c.samples, sample{p.count, at})
			}
		}
		if c.bad == "" {
			c.bad = bad
		}
		c.mu.Unlock()
	}
}

// each calls f with every client, locked.
func each(clients []*client, f func(*client)) {
	for _, c := range clients {
		c.mu.Lock()
		f(c)
		c.mu.Unlock()
	}
}

// waitSnapshots waits until every client has its snapshot or has dropped.
func waitSnapshots(ctx context.Context, clients []*client, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); ctx.Err() == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		waiting := 0
		each(clients, func(c *client) {
			if c.latest == nil && c.err == nil {
				waiting++
			}
		})
		if waiting == 0 {
			return
		}
	}
}

// closeAll closes every client with 1000 and waits for the server's answer
// (bounded); it may be called more than once.
func closeAll(clients []*client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c.closing.Swap(true) {
			continue
		}
		wg.Go(func() {
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "wsload done")
			if err := c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(2*time.Second)); err == nil {
				select {
				case <-c.done:
				case <-time.After(3 * time.Second):
				}
			}
			_ = c.conn.Close()
			<-c.done
		})
	}
	wg.Wait()
}

// diff is "" if got holds exactly the statistics of want, byte-equal, and
// else the first difference.
func diff(got, want map[string][]byte) string {
	if got == nil {
		return "no snapshot received"
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[name]; !ok {
			return name + " missing"
		} else if !bytes.Equal(g, want[name]) {
			return fmt.Sprintf("%s = %.80s, REST has %.80s", name, g, want[name])
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d statistics, REST has %d", len(got), len(want))
	}
	return ""
}
