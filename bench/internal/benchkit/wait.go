package benchkit

import (
	"context"
	"fmt"
	"time"
)

// Poll calls f every interval until it returns nil, ctx ends or timeout
// passes; then it returns f's last error.
func Poll(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// Pace calls f(i) for i = 1..n at rate calls per second, each at its own
// moment on a fixed schedule (a late call does not push back the others).
func Pace(ctx context.Context, rate float64, n int, f func(i int)) {
	period := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 1; i <= n && ctx.Err() == nil; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i-1) * period)))
		f(i)
	}
}
