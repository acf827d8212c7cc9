package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/IBM/sarama"
)

// markFilter wraps goka's consumer group so that the batcher, not goka,
// decides which input offsets are committed: goka marks every input record
// once its callback is done, which would commit past an open batch. Marks on
// the loop topic pass through unchanged.
//
// It also keeps consuming across rebalances inside one Consume call: goka
// sleeps a hard-coded 5 s whenever Consume returns, which would make every
// rebalance at least that slow.
type markFilter struct {
	sarama.ConsumerGroup
	b *batcher
}

func (f *markFilter) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	var retryUntil time.Time
	for {
		err := f.ConsumerGroup.Consume(ctx, topics, &filterHandler{h, f.b})
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			retryUntil = time.Time{}
			continue
		}
		// A restarting broker answers for a while that its coordinator is
		// loading or moving: wait for it rather than exit.
		if !transient(err) {
			return err
		}
		if retryUntil.IsZero() {
			retryUntil = time.Now().Add(transientWait)
		} else if time.Now().After(retryUntil) {
			return fmt.Errorf("the group coordinator did not recover in %v: %w", transientWait, err)
		}
		f.b.logger.Warn("consumer group not available yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

const transientWait = 2 * time.Minute

func transient(err error) bool {
	for _, e := range []error{
		sarama.ErrOffsetsLoadInProgress, sarama.ErrConsumerCoordinatorNotAvailable, sarama.ErrNotCoordinatorForConsumer,
		sarama.ErrRebalanceInProgress, sarama.ErrLeaderNotAvailable, sarama.ErrNotLeaderForPartition,
		sarama.ErrRequestTimedOut, sarama.ErrNetworkException, sarama.ErrOutOfBrokers, sarama.ErrBrokerNotAvailable,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var netErr *net.OpError // the broker went away mid-session
	return errors.Is(err, io.EOF) || errors.As(err, &netErr)
}

type filterHandler struct {
	sarama.ConsumerGroupHandler
	b *batcher
}

func (h *filterHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.b.startSession(s)
	return h.ConsumerGroupHandler.Setup(filteredSession{s, h.b.input})
}

func (h *filterHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	err := h.ConsumerGroupHandler.Cleanup(filteredSession{s, h.b.input})
	h.b.endSession()
	return err
}

func (h *filterHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	if c.Topic() == h.b.input {
		h.b.claim(c.Partition(), c.InitialOffset())
	}
	return h.ConsumerGroupHandler.ConsumeClaim(filteredSession{s, h.b.input}, c)
}

// filteredSession drops goka's marks and resets of the input topic.
type filteredSession struct {
	sarama.ConsumerGroupSession
	input string
}

func (s filteredSession) MarkOffset(topic string, partition int32, offset int64, metadata string) {
	if topic != s.input {
		s.ConsumerGroupSession.MarkOffset(topic, partition, offset, metadata)
	}
}

func (s filteredSession) MarkMessage(msg *sarama.ConsumerMessage, metadata string) {
	s.MarkOffset(msg.Topic, msg.Partition, msg.Offset+1, metadata)
}

func (s filteredSession) ResetOffset(topic string, partition int32, offset int64, metadata string) {
	if topic != s.input {
		s.ConsumerGroupSession.ResetOffset(topic, partition, offset, metadata)
	}
}
