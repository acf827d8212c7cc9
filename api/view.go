package api

import (
	"context"
	"errors"
	"fmt"
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
	s.SetTable(view)
	// Each time the View has caught up (at start, after a reconnect), the
	// hub gets every value: Update does not publish while it recovers.
	states := view.ObserveStateChanges()
	defer states.Stop()
	go func() {
		for state := range states.C() {
			if goka.ViewState(state) == goka.ViewStateRunning {
				s.publishAll(view)
			}
		}
	}()
	if err := view.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("view of %s: %w", c.Names.Table(), err)
	}
	return nil
}
