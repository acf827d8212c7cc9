package datafeed

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/internal/logbuf"
)

// TestProgressLine checks the datafeed's periodic INFO line, and that stop
// waits for its goroutine.
func TestProgressLine(t *testing.T) {
	logs := &logbuf.Buffer{}
	var acked, failed atomic.Int64
	stop := logProgress(slog.New(slog.NewJSONHandler(logs, nil)), &acked, &failed, 10*time.Millisecond)
	await.True(t, 10*time.Second, "a first progress line", func() bool { return strings.Contains(logs.String(), "datafeed progress") })
	acked.Add(7)
	await.True(t, 10*time.Second, "a progress line with 7 records", func() bool { return strings.Contains(logs.String(), `"acknowledged":7,`) })
	stop()
	after := logs.String()
	if !strings.Contains(after, `"msg":"datafeed progress"`) || !strings.Contains(after, `"records_per_second":`) || !strings.Contains(after, `"failed":0`) {
		t.Errorf("progress lines: %s", after)
	}
}
