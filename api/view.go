package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"

	"github.com/picstats/picstats/cluster"
)

// RunView keeps a goka View of the group table up to date and hands it to s,
// whose Update callback and publishAll push every change to the websocket
// hub, until ctx is cancelled. The table topic exists only once a processor has
// started, so creating the view is retried until then, at least once a
// second: an API started beside its first processor is up a second after it.
func RunView(ctx context.Context, c cluster.Config, s *Server, opts ...goka.ViewOption) error {
	var view *goka.View
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		var err error
		view, err = goka.NewView(c.Brokers, c.Names.Table(), new(gokacodec.Bytes), append(append(c.ViewOptions(), goka.WithViewCallback(s.Update)), opts...)...)
		if err == nil {
			break
		}
		s.logger.Info("waiting for the group table (is a processor running?)", "table", c.Names.Table(), "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	table := &guarded{table: view}
	s.SetTable(table)
	// Each time the View has caught up (at start, after a reconnect), the
	// hub gets every value: Update does not publish while it recovers.
	states := view.ObserveStateChanges()
	defer states.Stop()
	go func() {
		for state := range states.C() {
			if goka.ViewState(state) == goka.ViewStateRunning {
				s.publishAll(table)
			}
		}
	}()
	// The View closes itself when its context ends; close the guard first,
	// so that no Get is running or starts then.
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
			table.close()
			stop()
		case <-runCtx.Done():
		}
	}()
	err := view.Run(runCtx)
	table.close()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("view of %s: %w", c.Names.Table(), err)
	}
	return nil
}

// guarded keeps Gets away from a View that closes: goka's View.close sets
// the View's partitions to nil without a lock, so a Get during shutdown (a
// REST request, publishAll) raced with it (the race detector caught one in
// an end-to-end test). Closing the guard waits for the Gets in flight; from
// then on the table is not ready. (A View that stops on an error closes
// before its Run returns, which the guard cannot precede.)
type guarded struct {
	mu     sync.RWMutex
	closed bool
	table  Table
}

var errViewStopped = errors.New("the view of the table has stopped")

func (g *guarded) Get(key string) (any, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return nil, errViewStopped
	}
	return g.table.Get(key)
}

func (g *guarded) Recovered() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return !g.closed && g.table.Recovered()
}

func (g *guarded) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
