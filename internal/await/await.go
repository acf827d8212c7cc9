// Package await lets tests wait for state that no event announces — a
// count that grows, a connection the server closes — by polling it, with a
// deadline far beyond what a healthy run needs, so that a busy machine
// cannot fail a test by being slow.
package await

import (
	"errors"
	"testing"
	"time"
)

// Interval is how often a condition is polled.
const Interval = 20 * time.Millisecond

// Until calls check every Interval until it returns nil, and fails t if it
// has not after within, with what (the condition, as in "waiting for
// <what>") and check's last error (the state it found).
func Until(t testing.TB, within time.Duration, what string, check func() error) {
	t.Helper()
	var err error
	if !Within(within, func() bool { err = check(); return err == nil }) {
		t.Fatalf("waited %v for %s: %v", within, what, err)
	}
}

// Within calls cond every Interval until it holds, for at most within, and
// reports whether it did: for callers that report the last state
// themselves.
func Within(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(Interval)
	}
	return true
}

// True is Until for a condition with nothing to report.
func True(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	Until(t, within, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("it did not happen")
