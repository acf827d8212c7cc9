package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/stats"
)

// signalTable is read the way goka's View.Get reads itself: first its state
// Signal (View.Get calls v.state.IsState, which takes the Signal's lock),
// then the value. Its first Get can be held, to keep publishAll inside it.
type signalTable struct {
	sig      *goka.Signal
	entered  chan struct{} // closed when the first Get has begun
	release  chan struct{} // the first Get goes on once this is closed
	once     sync.Once
	gets     atomic.Int64
	finished atomic.Int64 // Gets that returned
}

func newSignalTable(sig *goka.Signal) *signalTable {
	return &signalTable{sig: sig, entered: make(chan struct{}), release: make(chan struct{})}
}

func (t *signalTable) Get(string) (any, error) {
	t.gets.Add(1)
	defer t.finished.Add(1)
	t.once.Do(func() { close(t.entered); <-t.release })
	_ = t.sig.IsState(goka.State(goka.ViewStateIdle))
	return nil, nil
}

func (t *signalTable) Recovered() bool { return t.sig.IsState(goka.State(goka.ViewStateRunning)) }

func newViewSignal() *goka.Signal {
	return goka.NewSignal(goka.State(goka.ViewStateIdle), goka.State(goka.ViewStateInitializing),
		goka.State(goka.ViewStateConnecting), goka.State(goka.ViewStateCatchUp), goka.State(goka.ViewStateRunning))
}

// The hang of issue 13, made deterministic with goka's own Signal: goka's
// Signal.SetState holds the Signal's lock while it sends on the observer's
// channel (capacity 1), and Get takes that lock. The View changes state
// twice (Running → Connecting → Running, as after every reconnect) while
// publishAll is inside a Get. If the goroutine that reads the state changes
// were the one running publishAll, the second SetState would block holding
// the lock, the held Get would then wait for it, and nothing would read the
// channel again: View, REST and hub wedged for good. (It fails so when
// follow calls publishAll itself.)
func TestStateChangesDuringPublishAllDoNotWedgeTheView(t *testing.T) {
	sig := newViewSignal()
	tbl := newSignalTable(sig)
	s := New(stats.All(), slog.New(slog.DiscardHandler))
	obs := sig.ObserveStateChange()
	followed := make(chan struct{})
	go func() { defer close(followed); s.follow(obs.C(), tbl, make(chan struct{}, 1)) }()

	sig.SetState(goka.State(goka.ViewStateRunning))
	select {
	case <-tbl.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("publishAll did not run when the View became Running")
	}

	changed := make(chan struct{})
	go func() {
		defer close(changed)
		sig.SetState(goka.State(goka.ViewStateConnecting))
		sig.SetState(goka.State(goka.ViewStateRunning))
	}()
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("goka's SetState is blocked while publishAll is inside Get: the View's state changes are not read, and the View is wedged")
	}
	close(tbl.release)

	// The second Running publishes again: every statistic, twice in all.
	want := int64(2 * len(stats.All()))
	await.True(t, 30*time.Second, "publishAll to run again after the reconnect", func() bool { return tbl.finished.Load() >= want })
	obs.Stop()
	select {
	case <-followed:
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not return after the observer stopped")
	}
	if !s.live.Load() {
		t.Error("the server was not marked recovered")
	}
}

// stuckTable holds every Get until released.
type stuckTable struct{ release chan struct{} }

func (t stuckTable) Get(string) (any, error) { <-t.release; return nil, nil }
func (t stuckTable) Recovered() bool         { return true }

func TestHealthzFailsWhileTheServingLoopIsWedged(t *testing.T) {
	s := New(stats.All(), slog.New(slog.DiscardHandler), WithWedgedAfter(time.Second))
	h := s.Handler()
	health := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var body struct{ Status, Reason string }
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body.Reason
	}
	if code, why := health(); code != http.StatusOK {
		t.Fatalf("/healthz of an idle server: %d %s", code, why)
	}

	// publishAll stuck in a Get.
	tbl := stuckTable{make(chan struct{})}
	states := make(chan goka.State, 1)
	followed := make(chan struct{})
	go func() { defer close(followed); s.follow(states, tbl, make(chan struct{}, 1)) }()
	states <- goka.State(goka.ViewStateRunning)
	await.True(t, 30*time.Second, "/healthz to fail while publishAll is stuck", func() bool {
		code, why := health()
		return code == http.StatusServiceUnavailable && why != ""
	})
	close(tbl.release)
	await.True(t, 30*time.Second, "/healthz to recover", func() bool { code, _ := health(); return code == http.StatusOK })
	close(states)
	<-followed

	// Published changes that the hub does not flush: its Run is not running.
	s.hub.Publish("count", json.RawMessage(`{"registrations":1}`))
	await.True(t, 30*time.Second, "/healthz to fail while the hub does not flush", func() bool {
		code, _ := health()
		return code == http.StatusServiceUnavailable
	})
	if _, why := health(); why == "" {
		t.Error("/healthz gives no reason")
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = s.hub.Run(ctx) }()
	await.True(t, 30*time.Second, "/healthz to recover once the hub runs", func() bool { code, _ := health(); return code == http.StatusOK })
	cancel()
	<-ran
}
