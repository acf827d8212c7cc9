package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/picstats/picstats/hub"
	"github.com/picstats/picstats/stats"
)

// The websocket's topics are the statistics routes below /api/stats/, with
// their queries: a client that subscribes to
//
//	count                    gets what GET /api/stats/count answers (a default topic: every client gets it unless it subscribes)
//	count?from=-1h           gets what GET /api/stats/count?from=-1h answers, a time range
//	count/windows?size=1h    gets what GET /api/stats/count/windows?size=1h answers
//
// errors included ({"error": …} bodies). Time ranges and window lists are
// on-demand topics: they are computed only while a client is subscribed to
// them, when it subscribes and then every TopicsInterval — a relative range
// moves with the clock even when no record comes — and sent when they change.
var _ hub.Subscriptions = (*Server)(nil)

// MaxOnDemandTopics bounds the distinct time ranges and window lists all
// clients together may be subscribed to: each is recomputed every second.
const MaxOnDemandTopics = 256

// TopicsInterval is how often the time ranges and window lists clients
// subscribed to are recomputed; the windowed statistics they come from
// change at most once per --window-snapshot-interval anyway.
const TopicsInterval = time.Second

// topic is a parsed websocket topic.
type topic struct {
	name    string     // the statistic
	windows bool       // name/windows?size=
	query   url.Values // from/to, or size
}

// onDemand tells a time range or window list from a statistic's own topic.
func (tp topic) onDemand() bool { return tp.windows || len(tp.query) > 0 }

// parseTopic checks a topic's form; whether a time range can be answered
// depends on the windows kept, and is the topic's value.
func (s *Server) parseTopic(raw string) (topic, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Fragment != "" || u.Path == "" || strings.HasPrefix(u.Path, "/") {
		return topic{}, fmt.Errorf("topic %q: want <statistic>, <statistic>?from=…&to=… or <statistic>/windows?size=…", raw)
	}
	tp := topic{query: u.Query()}
	tp.name, tp.windows = strings.CutSuffix(u.Path, "/windows")
	if _, ok := s.kind(tp.name); !ok {
		return topic{}, fmt.Errorf("topic %q: unknown statistic %q (known: %s)", raw, tp.name, strings.Join(stats.Names(s.kinds), ", "))
	}
	allowed := map[string]bool{"from": !tp.windows, "to": !tp.windows, "size": tp.windows}
	for k, v := range tp.query {
		if !allowed[k] || len(v) != 1 {
			return topic{}, fmt.Errorf("topic %q: %q is not an argument it takes once (a time range takes from and to; a window list size)", raw, k)
		}
	}
	if tp.windows {
		if len(s.windowed[tp.name]) == 0 {
			return topic{}, fmt.Errorf("topic %q: statistic %q is not kept over windows", raw, tp.name)
		}
	} else if len(tp.query) > 0 {
		if _, _, err := s.rangeArgs(tp.name, tp.query, time.Now()); err != nil {
			return topic{}, fmt.Errorf("topic %q: %w", raw, err)
		}
	}
	return tp, nil
}

// Subscribe checks the topics a websocket client asks for and offers the
// hub the current value of each on-demand one (hub.Subscriptions).
func (s *Server) Subscribe(topics []string) error {
	var errs []error
	for _, raw := range topics {
		if _, err := s.parseTopic(raw); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// The hub counts these topics as demanded already.
	if n := s.onDemand(s.hub.Demanded()); n > s.maxOnDemand {
		return fmt.Errorf("the server computes at most %d distinct time ranges and window lists at once, and %d are asked for: ask for fewer, or for relative ranges such as -1h, which every client shares", s.maxOnDemand, n)
	}
	s.offer(topics, time.Now())
	return nil
}

// onDemand counts the time ranges and window lists among topics.
func (s *Server) onDemand(topics []string) int {
	n := 0
	for _, raw := range topics {
		if tp, err := s.parseTopic(raw); err == nil && tp.onDemand() {
			n++
		}
	}
	return n
}

// offer computes the on-demand topics among topics and offers them to the
// hub, which sends those that changed. Nothing before the View has
// recovered: the topics are offered once it has (refreshTopics).
func (s *Server) offer(topics []string, now time.Time) {
	t, ok := s.serving()
	if !ok {
		return
	}
	for _, raw := range topics {
		tp, err := s.parseTopic(raw)
		if err != nil || !tp.onDemand() {
			continue
		}
		var a answer
		if tp.windows {
			a = s.windowsAnswer(t, tp.name, tp.query.Get("size"))
		} else {
			a = s.rangeAnswer(t, tp.name, tp.query, now)
		}
		b, err := json.Marshal(a.body)
		if err != nil {
			s.logger.Error("encoding a websocket topic", "topic", raw, "err", err)
			continue
		}
		s.hub.Offer(raw, b)
	}
}

// refreshTopics offers the on-demand topics clients are subscribed to every
// interval, until ctx ends.
func (s *Server) refreshTopics(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s.offer(s.hub.Demanded(), now)
		}
	}
}
