package benchkit

import (
	"bytes"
	"math"
	"sync"
	"time"
)

// Marker is a writer that notes when a child first writes a string, such as
// Kafka Streams' RUNNING or picstats' "processor ready".
type Marker struct {
	sub  []byte
	mu   sync.Mutex
	at   time.Time
	tail []byte // the end of the previous write, for a match split across writes
}

// NewMarker watches for sub.
func NewMarker(sub string) *Marker { return &Marker{sub: []byte(sub)} }

func (m *Marker) Write(p []byte) (int, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at.IsZero() && bytes.Contains(append(m.tail, p...), m.sub) {
		m.at = now
	}
	m.tail = append(m.tail, p...)
	m.tail = m.tail[max(0, len(m.tail)-len(m.sub)):]
	return len(p), nil
}

// Since is the time from start to the first match in seconds; NaN if none
// yet or m is nil.
func (m *Marker) Since(start time.Time) float64 {
	if m == nil {
		return math.NaN()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at.IsZero() {
		return math.NaN()
	}
	return m.at.Sub(start).Seconds()
}
