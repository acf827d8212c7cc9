package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// parsed is one distinct message of /api/ws, decoded once.
type parsed struct {
	typ      string            // snapshot or update
	stats    map[string][]byte // compacted result per statistic; never written to, as clients share it
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
	stats, err := compactAll(m.Stats)
	if err != nil {
		return &parsed{err: err}
	}
	p := &parsed{typ: m.Type, stats: stats}
	p.count, p.hasCount = benchkit.ParseCount(stats["count"])
	return p
}

// compactAll compacts each statistic's JSON, so that REST's and the
// websocket's results compare as bytes.
func compactAll(raw map[string]json.RawMessage) (map[string][]byte, error) {
	out := make(map[string][]byte, len(raw))
	for name, r := range raw {
		var b bytes.Buffer
		if err := json.Compact(&b, r); err != nil {
			return nil, fmt.Errorf("statistic %s: %w", name, err)
		}
		out[name] = b.Bytes()
	}
	return out, nil
}

// msgCache decodes each distinct message once: the hub sends one encoding
// of an update to every client, and decoding it per client would mostly
// load this tool. It is keyed by the whole message, so a client's state is
// exactly what decoding its own bytes would give.
type msgCache struct {
	mu sync.Mutex
	m  map[string]*parsed
}

func (c *msgCache) get(b []byte) *parsed {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[string(b)]
	if !ok {
		if c.m == nil || len(c.m) >= 4096 { // bounded: old messages are not sent again
			c.m = map[string]*parsed{}
		}
		p = parseMessage(b)
		c.m[string(b)] = p
	}
	return p
}
