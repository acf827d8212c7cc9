package processor

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"

	"github.com/picstats/picstats/cluster"
)

// sessionLoop wraps the consumer group of goka's table processor so that it
// keeps consuming across rebalances inside one Consume call: goka sleeps a
// hard-coded 5 s whenever Consume returns, which would make every rebalance
// at least that slow. It also waits out the transient errors of a
// restarting broker instead of letting goka stop.
type sessionLoop struct {
	sarama.ConsumerGroup
	logger *slog.Logger
}

func (f *sessionLoop) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	var retryUntil time.Time
	for {
		err := f.ConsumerGroup.Consume(ctx, topics, h)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			retryUntil = time.Time{}
			continue
		}
		if !cluster.Transient(err) {
			return err
		}
		if retryUntil.IsZero() {
			retryUntil = time.Now().Add(transientWait)
		} else if time.Now().After(retryUntil) {
			return fmt.Errorf("the group coordinator did not recover in %v: %w", transientWait, err)
		}
		f.logger.Warn("consumer group not available yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

const transientWait = 2 * time.Minute
