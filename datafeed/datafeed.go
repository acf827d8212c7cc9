// Package datafeed produces picture registrations on the picture topic, like
// the original assignment's feed: a random picture from the images folder
// and a weight drawn uniformly from [20, 5000) grams, by default every 2 to 4
// seconds, or at a steady rate.
package datafeed

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/codec"
)

// Key says what a produced record's key is.
type Key string

const (
	KeyNone      Key = "none"       // a null key, as the original skeleton sent
	KeyPictureID Key = "picture_id" // the picture's id
)

// ParseKey checks a --key value.
func ParseKey(s string) (Key, error) {
	switch k := Key(s); k {
	case KeyNone, KeyPictureID:
		return k, nil
	}
	return "", fmt.Errorf("key %q: want %q or %q", s, KeyNone, KeyPictureID)
}

// Config says what to produce and how fast.
type Config struct {
	Topic  string
	Images string  // folder of *.jpg pictures; a picture's id is its base name
	Rate   float64 // records per second; 0 waits 2–4 whole seconds between records, like the skeleton
	Count  int     // records to produce; 0 produces until cancelled
	Key    Key
	Rand   *rand.Rand // nil: seeded randomly
	// Acked, if set, is called with every record the cluster acknowledged
	// (it carries its partition and offset), from franz-go's produce
	// callback: it must not block. Tests use it to check that nothing
	// acknowledged is lost.
	Acked func(*kgo.Record)
}

// Weight bounds of the skeleton's feed: uniform in [MinWeight, MaxWeight).
const (
	MinWeight = 20
	MaxWeight = 5000
)

// Pictures returns the picture ids found in dir, sorted.
func Pictures(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jpg"))
	if err != nil {
		return nil, fmt.Errorf("list pictures in %s: %w", dir, err)
	}
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = strings.TrimSuffix(filepath.Base(f), ".jpg")
	}
	slices.Sort(ids)
	return ids, nil
}

// Record returns the next random record's key and value. With no pictures
// it sends "picture_id": null, as the skeleton did; the processor rejects it.
func Record(rng *rand.Rand, pictures []string, key Key) (k, v []byte) {
	weight := MinWeight + rng.Int64N(MaxWeight-MinWeight)
	if len(pictures) == 0 {
		return nil, fmt.Appendf(nil, `{"picture_id":null,"weight":%d}`, weight)
	}
	reg := codec.Registration{PictureID: pictures[rng.IntN(len(pictures))], Weight: weight}
	if key == KeyPictureID {
		k = []byte(reg.PictureID)
	}
	return k, codec.Encode(reg)
}

// Run produces records with cl until Count records were acknowledged or ctx
// is cancelled. It returns the number of records acknowledged by the broker.
func Run(ctx context.Context, cl *kgo.Client, cfg Config, logger *slog.Logger) (int, error) {
	pictures, err := Pictures(cfg.Images)
	if err != nil {
		return 0, err
	}
	if len(pictures) == 0 {
		logger.Warn(`no *.jpg pictures found: sending "picture_id": null like the original skeleton; every record will be rejected`, "images", cfg.Images)
	}
	rng := cfg.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	logger.Info("datafeed producing", "topic", cfg.Topic, "pictures", len(pictures), "rate", rateText(cfg.Rate), "count", cfg.Count, "key", cfg.Key)

	var pace func() time.Duration
	if cfg.Rate > 0 {
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		next := time.Now()
		pace = func() time.Duration { next = next.Add(interval); return time.Until(next) }
	} else {
		pace = func() time.Duration { return time.Duration(2+rng.IntN(3)) * time.Second }
	}

	var acked, failed atomic.Int64           // counted in franz-go's produce callbacks
	produceCtx := context.WithoutCancel(ctx) // a record once handed over is not aborted
	stopProgress := logProgress(logger, &acked, &failed, time.Minute)
	defer stopProgress()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for sent := 0; cfg.Count == 0 || sent < cfg.Count; sent++ {
		k, v := Record(rng, pictures, cfg.Key)
		cl.Produce(produceCtx, &kgo.Record{Topic: cfg.Topic, Key: k, Value: v}, func(r *kgo.Record, err error) {
			if err != nil {
				if failed.Add(1) == 1 {
					logger.Error("produce failed", "topic", cfg.Topic, "err", err)
				}
				return
			}
			acked.Add(1)
			if cfg.Acked != nil {
				cfg.Acked(r)
			}
			if cfg.Rate == 0 {
				logger.Info("sent registration", "value", string(r.Value), "partition", r.Partition, "offset", r.Offset)
			}
		})
		if wait := pace(); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				sent = cfg.Count // stop
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	// Wait for what is in flight even when cancelled: nothing produced is
	// dropped silently, and the count returned is exact.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := cl.Flush(flushCtx); err != nil {
		return int(acked.Load()), fmt.Errorf("flush: %w", err)
	}
	if n := failed.Load(); n > 0 {
		return int(acked.Load()), fmt.Errorf("%d records could not be produced to %s", n, cfg.Topic)
	}
	logger.Info("datafeed stopped", "acknowledged", int(acked.Load()))
	return int(acked.Load()), nil
}

func rateText(rate float64) string {
	if rate == 0 {
		return "one record every 2-4 s"
	}
	return fmt.Sprintf("%g records/s", rate)
}

// logProgress logs one INFO line per interval with the records
// acknowledged and failed since the last, until the returned stop is
// called (which waits for it).
func logProgress(logger *slog.Logger, acked, failed *atomic.Int64, interval time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		lastAcked, lastFailed := acked.Load(), failed.Load()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			a, f := acked.Load(), failed.Load()
			logger.Info("datafeed progress", "acknowledged", a-lastAcked,
				"records_per_second", float64(a-lastAcked)/interval.Seconds(), "failed", f-lastFailed)
			lastAcked, lastFailed = a, f
		}
	}()
	return func() { close(quit); <-done }
}
