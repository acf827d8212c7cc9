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

type sample struct {
	count int64
	at    time.Duration // since base
}

type client struct {
	id        int
	conn      *websocket.Conn
	dialStart time.Duration // since base
	handshake time.Duration
	done      chan struct{} // the reader stopped
	closing   atomic.Bool   // we are closing: a read error is not a drop

	mu         sync.Mutex
	snapshotAt time.Duration // since base; 0: none yet
	latest     map[string][]byte
	updates    int
	bytes      int64
	samples    []sample
	protoErr   string
	err        error // why the reader stopped, if it did before closing
}

func connectAll(ctx context.Context, wsURL string, n, concurrency int, base time.Time, cache *msgCache) ([]*client, []string) {
	dialer := &websocket.Dialer{HandshakeTimeout: dialTimeout, ReadBufferSize: 16 << 10, WriteBufferSize: 1 << 10}
	var (
		mu       sync.Mutex
		clients  []*client
		failures []string
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, concurrency)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return clients, failures
		}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Since(base)
			conn, resp, err := dialer.DialContext(ctx, wsURL, nil)
			if err != nil {
				if resp != nil {
					err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
				}
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
				return
			}
			c := &client{id: i, conn: conn, dialStart: start, handshake: time.Since(base) - start, done: make(chan struct{})}
			go c.read(cache, base)
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
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
		var p *parsed
		if typ == websocket.TextMessage {
			p = cache.get(buf.Bytes())
		} else {
			p = &parsed{err: fmt.Errorf("binary message")}
		}
		c.mu.Lock()
		c.bytes += int64(buf.Len())
		switch {
		case p.err != nil:
			c.protoError(p.err.Error())
		case c.latest == nil && p.typ != "snapshot":
			c.protoError("first message is not a snapshot")
		case c.latest == nil:
			c.latest = maps.Clone(p.stats) // p is shared: never write to it
			c.snapshotAt = at
		case p.typ != "update":
			c.protoError("a second snapshot")
		default:
			maps.Copy(c.latest, p.stats)
			c.updates++
			if p.hasCount {
				c.samples = append(c.samples, sample{p.count, at})
			}
		}
		c.mu.Unlock()
	}
}

func (c *client) protoError(s string) {
	if c.protoErr == "" {
		c.protoErr = s
	}
}

func waitSnapshots(ctx context.Context, clients []*client, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, c := range clients {
		for ctx.Err() == nil && time.Now().Before(deadline) {
			c.mu.Lock()
			ok := c.latest != nil || c.err != nil
			c.mu.Unlock()
			if ok {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// received returns the update messages and bytes (snapshots included) the
// clients have received so far.
func received(clients []*client) (updates int, bytes int64) {
	for _, c := range clients {
		c.mu.Lock()
		updates += c.updates
		bytes += c.bytes
		c.mu.Unlock()
	}
	return updates, bytes
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

// compareAll counts the clients whose every statistic is byte-equal to rest,
// and describes the first few that are not.
func compareAll(clients []*client, rest map[string][]byte) (equal int, mismatches []string) {
	for _, c := range clients {
		c.mu.Lock()
		why := diff(c.latest, rest)
		if why == "" && c.err != nil {
			why = "connection dropped: " + c.err.Error()
		}
		c.mu.Unlock()
		if why == "" {
			equal++
		} else if len(mismatches) < 5 {
			mismatches = append(mismatches, fmt.Sprintf("client %d: %s", c.id, why))
		}
	}
	return equal, mismatches
}

// diff returns "" if got holds exactly the statistics of want, byte-equal.
func diff(got, want map[string][]byte) string {
	if got == nil {
		return "no snapshot received"
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[name]
		if !ok {
			return fmt.Sprintf("%s missing", name)
		}
		if !bytes.Equal(g, want[name]) {
			return fmt.Sprintf("%s = %s, REST has %s", name, clip(g), clip(want[name]))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			return fmt.Sprintf("%s not served by REST", name)
		}
	}
	return ""
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
