package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// failingOffsets answers GetOffset with its errors, one per call, then 42.
type failingOffsets struct {
	goka.TopicManager
	errs  []error
	calls int
}

func (f *failingOffsets) GetOffset(string, int32, int64) (int64, error) {
	f.calls++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return -1, err
	}
	return 42, nil
}

func TestGetOffsetWaitsOutTransientErrors(t *testing.T) {
	notLeader := fmt.Errorf("offset: %w", sarama.ErrNotLeaderForPartition)
	tests := []struct {
		name      string
		errs      []error
		wait      time.Duration
		want      int64
		wantErr   error
		wantCalls int
	}{
		{"no error", nil, time.Minute, 42, nil, 1},
		{"a leader moving", []error{notLeader, sarama.ErrLeaderNotAvailable}, time.Minute, 42, nil, 3},
		{"not transient", []error{sarama.ErrUnknownTopicOrPartition, notLeader}, time.Minute, -1, sarama.ErrUnknownTopicOrPartition, 1},
		{"no time to wait", []error{notLeader, notLeader}, 0, -1, sarama.ErrNotLeaderForPartition, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &failingOffsets{errs: tt.errs}
			got, err := retryingTopicManager{TopicManager: f, wait: tt.wait}.GetOffset("t", 0, sarama.OffsetOldest)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) || f.calls != tt.wantCalls {
				t.Errorf("got %d, %v after %d calls; want %d, %v after %d", got, err, f.calls, tt.want, tt.wantErr, tt.wantCalls)
			}
		})
	}
}
