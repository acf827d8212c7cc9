package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// DefaultMissingTopicWait is how long the input topic may be missing
	// before the processor gives up: at start it may still be being
	// created, by another process racing this one.
	DefaultMissingTopicWait = 30 * time.Second
	fetchErrorPause         = 250 * time.Millisecond
)

// fetchErrorKind is what a fetch error means for the input stage.
type fetchErrorKind int

const (
	fetchErrorIgnored   fetchErrorKind = iota // the poll's context ended
	fetchErrorTransient                       // franz-go retries; it heals or persists as another kind
	fetchErrorMissing                         // the topic is not there: permanent once it lasts
	fetchErrorPermanent                       // will not heal by waiting: stop, say why
)

// classifyFetchError sorts the errors a poll may return (see
// kgo.Fetches.Errors). With franz-go's defaults retriable partition errors
// are retried inside the client and never returned, except UNKNOWN_TOPIC_ID,
// which it returns once it has persisted: the topic was deleted (or deleted
// and created anew, which a client never follows: it keeps the old topic's
// ID). Errors of the group session (ErrGroupSession) are retried by the
// client's group management, unless they are authorization failures.
func classifyFetchError(err error) fetchErrorKind {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fetchErrorIgnored
	case authError(err) != nil:
		return fetchErrorPermanent
	}
	var session *kgo.ErrGroupSession
	if errors.As(err, &session) {
		return fetchErrorTransient
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) || errors.Is(err, kerr.InconsistentTopicID) {
		return fetchErrorMissing
	}
	var dataLoss *kgo.ErrDataLoss
	if errors.As(err, &dataLoss) {
		return fetchErrorTransient // informational: the client resets and goes on
	}
	var ke *kerr.Error
	if errors.As(err, &ke) && !ke.Retriable && ke != kerr.UnknownServerError {
		return fetchErrorPermanent // e.g. UNSUPPORTED_COMPRESSION_TYPE
	}
	// Retriable Kafka errors, and untyped ones (a batch that does not parse,
	// a failed offset validation) that franz-go goes on retrying.
	return fetchErrorTransient
}

// authError returns the authorization or authentication failure in err's
// chain, if any.
func authError(err error) *kerr.Error {
	for _, e := range []*kerr.Error{kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed, kerr.ClusterAuthorizationFailed,
		kerr.SaslAuthenticationFailed, kerr.UnsupportedSaslMechanism, kerr.IllegalSaslState} {
		if errors.Is(err, e) {
			return e
		}
	}
	return nil
}

// fetchErrors turns the errors of the input stage's polls into a decision:
// go on (logging, at a bounded rate) or stop with an error that says what
// is wrong.
type fetchErrors struct {
	topic, group string
	missingWait  time.Duration
	logger       *slog.Logger

	missingSince, missingLast time.Time // a run of missing-topic errors without records in between

	window     time.Time // logging: the start of the current 10 s
	logged     int       // errors logged in the window
	suppressed int       // errors not logged in the window
}

const fetchErrorLogsPerWindow = 10

// observe takes one error of a poll at now and returns an error if the
// input stage must stop.
func (f *fetchErrors) observe(topic string, part int32, err error, now time.Time) error {
	switch classifyFetchError(err) {
	case fetchErrorIgnored:
		return nil
	case fetchErrorPermanent:
		switch auth := authError(err); {
		case errors.Is(auth, kerr.GroupAuthorizationFailed):
			return fmt.Errorf("input consumer group %s: %w: this processor may not use the group; check the ACLs", f.group, err)
		case auth != nil:
			return fmt.Errorf("input topic %s: %w: this processor may not read it; check the credentials and ACLs", f.topic, err)
		}
		return fmt.Errorf("input topic %s partition %d: %w", topic, part, err)
	case fetchErrorMissing:
		// A run of these ends at a gap longer than the wait, or at records
		// (progressed).
		if f.missingSince.IsZero() || now.Sub(f.missingLast) > f.missingWait {
			f.missingSince = now
		}
		f.missingLast = now
		if missing := now.Sub(f.missingSince); missing >= f.missingWait {
			return fmt.Errorf("input topic %s no longer exists (it was deleted, or deleted and created anew; missing for %v): %w",
				f.topic, missing.Round(time.Second), err)
		}
	}
	if now.Sub(f.window) >= 10*time.Second {
		if f.suppressed > 0 {
			f.logger.Warn("more errors reading the input were not logged", "errors", f.suppressed)
		}
		f.window, f.logged, f.suppressed = now, 0, 0
	}
	if f.logged >= fetchErrorLogsPerWindow {
		f.suppressed++
		return nil
	}
	f.logged++
	f.logger.Warn("reading the input", "topic", topic, "partition", part, "err", err)
	return nil
}

// progressed notes that a poll returned records: the topic is there.
func (f *fetchErrors) progressed() { f.missingSince, f.missingLast = time.Time{}, time.Time{} }
