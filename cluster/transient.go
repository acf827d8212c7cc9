package cluster

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// Transient reports whether a sarama error is one that waiting heals: a
// broker restarting or lost, a partition's leadership or a group's
// coordinator moving to another broker.
func Transient(err error) bool {
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

// OffsetWait is how long goka's look-up of a partition's oldest and newest
// offsets is retried while it fails with a transient error. When a broker
// is lost, its partitions have no leader until the controller fences it
// (broker.session.timeout.ms, 9 s by default) and clients learn the new
// leader; sarama's client retries once, so a processor or View gaining a
// table partition then failed with "not the leader for some partition".
const OffsetWait = 30 * time.Second

// retryingTopicManager is goka's topic manager with GetOffset retried for
// up to OffsetWait. GetOffset has no context: a shutdown while it waits
// waits with it, at most OffsetWait.
type retryingTopicManager struct {
	goka.TopicManager
	wait time.Duration
}

func (m retryingTopicManager) GetOffset(topic string, partition int32, at int64) (int64, error) {
	deadline := time.Now().Add(m.wait)
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		offset, err := m.TopicManager.GetOffset(topic, partition, at)
		if err == nil || !Transient(err) || time.Now().Add(backoff).After(deadline) {
			return offset, err
		}
		time.Sleep(backoff)
	}
}
