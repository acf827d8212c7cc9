package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// parsed is one distinct message, decoded once and shared by every client
// that received the same bytes: the hub sends one encoding of an update to
// all clients, so decoding it per client would mostly load this tool. The
// cache is keyed by the full message, so a client's state is exactly what
// decoding its own bytes would give.
type parsed struct {
	typ      string
	stats    map[string][]byte // compacted result per statistic
	count    int64             // count.registrations, if hasCount
	hasCount bool
	err      error
}

func parseMessage(b []byte) *parsed {
	var m struct {
		V     int                        `json:"v"`
		Type  string                     `json:"type"`
		Stats map[string]json.RawMessage `json:"stats"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return &parsed{err: fmt.Errorf("not JSON: %w", err)}
	}
	if m.V != 1 || (m.Type != "snapshot" && m.Type != "update") || m.Stats == nil {
		return &parsed{err: fmt.Errorf("unexpected message: v=%d type=%q stats=%v", m.V, m.Type, m.Stats != nil)}
	}
	p := &parsed{typ: m.Type, stats: make(map[string][]byte, len(m.Stats))}
	for name, raw := range m.Stats {
		c, err := compact(raw)
		if err != nil {
			return &parsed{err: fmt.Errorf("statistic %s: %w", name, err)}
		}
		p.stats[name] = c
	}
	if raw, ok := p.stats["count"]; ok {
		p.count, p.hasCount = benchkit.ParseCount(raw)
	}
	return p
}

func compact(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type msgCache struct {
	mu sync.Mutex
	m  map[string]*parsed
	n  atomic.Int64 // distinct messages decoded
}

func newMsgCache() *msgCache { return &msgCache{m: map[string]*parsed{}} }

func (c *msgCache) get(b []byte) *parsed {
	c.mu.Lock()
	p, ok := c.m[string(b)]
	c.mu.Unlock()
	if ok {
		return p
	}
	p = parseMessage(b)
	c.n.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if q, ok := c.m[string(b)]; ok {
		return q
	}
	if len(c.m) >= 4096 { // bounded for long --url runs; old messages are not sent again
		clear(c.m)
	}
	c.m[string(b)] = p
	return p
}
