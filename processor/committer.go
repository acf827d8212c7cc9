package processor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// committer commits input offsets on its own goroutine, so that the
// acknowledgements that call request (on the producers' goroutines) never
// wait for Kafka. Requests that queue up while a commit is in flight are
// coalesced into the next, keeping the highest offset of each partition.
// The batcher requests a partition's boundaries in increasing order, and
// commits are made one at a time, in request order, so the offset this
// process commits for a partition only ever grows.
type committer struct {
	commit func(offsets map[int32]int64) // synchronous
	logger *slog.Logger

	mu      sync.Mutex
	pending map[int32]int64
	stopped bool

	wake chan struct{} // capacity 1: pending has something
	quit chan struct{} // closed by stop
	done chan struct{} // closed when run has returned
}

func newCommitter(logger *slog.Logger, commit func(offsets map[int32]int64)) *committer {
	return &committer{commit: commit, logger: logger, pending: map[int32]int64{},
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

// request asks for offset of partition part to be committed. It never
// blocks for long and may be called at any time, also after stop: such a
// late commit is dropped. Dropping a commit is always safe: the batch is
// stored, and the partition's next owner starts at the last boundary that
// was committed, an earlier one, and replays from there; the table's
// replace-then-merge rule (Value.Apply) ignores the snapshots it repeats.
func (c *committer) request(part int32, offset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		c.logger.Debug("dropping an input commit acknowledged after the input stage stopped", "partition", part, "offset", offset)
		return
	}
	if cur, ok := c.pending[part]; !ok || offset > cur {
		c.pending[part] = offset
	}
	select {
	case c.wake <- struct{}{}:
	default: // run is woken already
	}
}

// run commits what is requested until stop, then what was requested
// before stop.
func (c *committer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
			c.commitPending()
		case <-c.quit:
			c.mu.Lock()
			c.stopped = true
			c.mu.Unlock()
			c.commitPending()
			return
		}
	}
}

func (c *committer) commitPending() {
	c.mu.Lock()
	offsets := c.pending
	if len(offsets) == 0 {
		c.mu.Unlock()
		return // offsets is still c.pending: not to be read unlocked
	}
	c.pending = map[int32]int64{}
	c.mu.Unlock()
	c.commit(offsets)
}

// forget drops the waiting commits of partitions this instance no longer
// owns: landing after their new owner's commits, they would move the
// group's offset back (harmless for exactness, but a needless replay).
func (c *committer) forget(parts []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range parts {
		delete(c.pending, p)
	}
}

// stop commits what was requested so far, stops run and waits for it.
func (c *committer) stop() {
	close(c.quit)
	<-c.done
}

// commitOffsets commits input offsets of topic, synchronously, and returns
// the commit's error (which it logs).
func commitOffsets(cl *kgo.Client, topic string, offsets map[int32]int64, logger *slog.Logger) (failed error) {
	req := make(map[int32]kgo.EpochOffset, len(offsets))
	for part, off := range offsets {
		req[part] = kgo.EpochOffset{Epoch: -1, Offset: off}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: req}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil {
			for _, topic := range resp.Topics {
				for _, part := range topic.Partitions {
					if err == nil {
						err = kerr.ErrorForCode(part.ErrorCode)
					}
				}
			}
		}
		if err != nil {
			failed = err
			// Not fatal: the batch is stored, and a later boundary (or a
			// replay from an earlier one) covers it.
			logger.Warn("committing input offsets", "offsets", fmt.Sprint(offsets), "err", err)
		}
	})
	return failed
}
