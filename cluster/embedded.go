package cluster

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka-compatible broker (franz-go's kfake) on
// 127.0.0.1, for the all-in-one run and the fast test suite. It keeps
// everything in memory unless a data directory is given.
type Embedded struct {
	cluster *kfake.Cluster
}

// EmbeddedOption configures StartEmbedded.
type EmbeddedOption func(*[]kfake.Opt)

// WithPort listens on a fixed port instead of a random free one.
func WithPort(port int) EmbeddedOption {
	return func(o *[]kfake.Opt) { *o = append(*o, kfake.Ports(port)) }
}

// WithDataDir persists the broker's state in dir, and reloads it from there.
func WithDataDir(dir string) EmbeddedOption {
	return func(o *[]kfake.Opt) { *o = append(*o, kfake.DataDir(dir)) }
}

// StartEmbedded starts a one-node broker.
func StartEmbedded(opts ...EmbeddedOption) (*Embedded, error) {
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(0),
		// kfake refuses session timeouts below 6 s by default; tests and
		// restarts are quicker with shorter ones allowed.
		kfake.GroupMinSessionTimeout(time.Second),
	}
	for _, o := range opts {
		o(&kopts)
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	return &Embedded{cluster: c}, nil
}

// Brokers returns the broker addresses to connect to.
func (e *Embedded) Brokers() []string { return e.cluster.ListenAddrs() }

// Close stops the broker.
func (e *Embedded) Close() { e.cluster.Close() }
