package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/picstats/picstats/cluster"
)

// RunView keeps a goka View of the group table up to date and hands it to s,
// whose Update callback and publishAll push every change to the websocket
// hub, until ctx is cancelled. The table topic exists only once a processor has
// started, so creating the view is retried until then, at least once a
// second: an API started beside its first processor is up a second after it.
// Meanwhile it asks the broker for the table's end offsets every second, so
// that s knows how current the View is (see freshness).
func RunView(ctx context.Context, c cluster.Config, s *Server, opts ...goka.ViewOption) error {
	adm, err := c.Client(s.clientOpts()...)
	if err != nil {
		return err
	}
	defer adm.Close()
	sampled := make(chan struct{})
	poke := make(chan struct{}, 1) // sample now: the View has just caught up
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer func() { stopSampling(); <-sampled }()
	go func() {
		defer close(sampled)
		s.sampleEnds(sampleCtx, kadm.NewClient(adm), string(c.Names.Table()), poke)
	}()

	var view *goka.View
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
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
	refreshed := make(chan struct{})
	refreshCtx, stopRefreshing := context.WithCancel(ctx)
	go func() { defer close(refreshed); s.refreshTopics(refreshCtx, TopicsInterval) }()
	defer func() { stopRefreshing(); <-refreshed }()
	states := view.ObserveStateChanges()
	followed := make(chan struct{})
	go func() { defer close(followed); s.follow(states.C(), table, poke) }()
	defer func() { states.Stop(); <-followed }()

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
	err = view.Run(runCtx)
	table.close()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("view of %s: %w", c.Names.Table(), err)
	}
	return nil
}

// follow reads the View's state changes until the channel closes and,
// each time the View is running (at start, after a reconnect), has the
// recovered values published. goka's Signal.SetState holds the View's state
// lock while it sends on states (capacity 1), and View.Get takes that lock:
// so this loop does nothing but read and hand on, and publishAll — which
// calls Get — runs on a goroutine of its own. Otherwise two state changes
// during one publishAll wedge the View, REST and the hub for good.
func (s *Server) follow(states <-chan goka.State, t Table, poke chan<- struct{}) {
	running := make(chan struct{}, 1)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for range running {
			s.live.Store(true) // before publishAll: Updates that come meanwhile publish themselves
			s.publishAll(t)
			s.published.Store(true)
			select {
			case poke <- struct{}{}:
			default:
			}
		}
	}()
	for state := range states {
		if goka.ViewState(state) == goka.ViewStateRunning {
			select {
			case running <- struct{}{}:
			default: // a publishAll is due already
			}
		}
	}
	close(running)
	<-published
}

// sampleEnds records the table's end offsets every sample interval, and at
// once when poked, until ctx ends.
func (s *Server) sampleEnds(ctx context.Context, adm *kadm.Client, table string, poke <-chan struct{}) {
	t := time.NewTicker(s.sampleInterval)
	defer t.Stop()
	for {
		at := time.Now()
		reqCtx, cancel := context.WithTimeout(ctx, 5*s.sampleInterval)
		ends, err := adm.ListEndOffsets(reqCtx, table)
		cancel()
		if err == nil {
			err = ends.Error()
		}
		if offs, ok := ends[table]; err == nil && ok && len(offs) > 0 {
			byPart := make([]int64, len(offs))
			for p, o := range offs {
				if int(p) < len(byPart) {
					byPart[p] = o.Offset
				}
			}
			s.fresh.sampled(at, byPart)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-poke:
		}
	}
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
