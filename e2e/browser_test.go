package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/internal/testkafka"
	"github.com/picstats/picstats/processor"
)

// EnvRequireBrowser makes TestDashboardInABrowser fail, instead of skip,
// when Chromium or Node.js is missing; .ci/run sets it.
const EnvRequireBrowser = "PICSTATS_REQUIRE_BROWSER"

// TestDashboardInABrowser is a person watching the dashboard: Debian's
// Chromium, driven by playwright-core (e2e/browser/dashboard.mjs), opens the
// page against a running pipeline, sees the count rise without reloading,
// sees the top pictures' thumbnails load, survives a restart of the API
// process (the page shows the lost connection, reconnects, and shows fresh
// numbers), picks time ranges (each leaves out the registrations older than
// it) and the over-time chart's statistic and window size, and saves
// screenshots to e2e/browser/out/.
func TestDashboardInABrowser(t *testing.T) {
	chromium := os.Getenv("PICSTATS_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	missing := func(what, fix string) {
		msg := fmt.Sprintf("%s not found: %s", what, fix)
		if os.Getenv(EnvRequireBrowser) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg + fmt.Sprintf(" (set %s=1 to make this a failure)", EnvRequireBrowser))
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("Chromium at "+chromium, "apt-get install chromium, or set PICSTATS_CHROMIUM")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node", "install Node.js 20")
	}
	browserDir, _ := filepath.Abs("browser")
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core")); err != nil {
		npm := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		npm.Dir = browserDir
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", browserDir, err, out)
		}
	}

	cfg := testkafka.Start(t)
	if err := cluster.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	startProcessor(t, cfg, processor.WithBatchSize(100))
	// For the time ranges: registrations 40 days, 3 days and 5 hours old.
	keepOldRecords(t, cfg)
	for _, age := range []time.Duration{40 * 24 * time.Hour, 72 * time.Hour, 5 * time.Hour} {
		produce(t, cfg, pictureRecords(t, string(cfg.Names.Pictures), 3000, time.Now().Add(-age)))
	}
	feedPictures(t, cfg, 20)

	bin := buildBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the API takes this port, and takes it again after its restart
	url := "http://" + addr
	startAPIProcess := func() *exec.Cmd {
		cmd := startRole(t, bin, "api", "--brokers", strings.Join(cfg.Brokers, ","), "--topic-prefix", cfg.Names.Prefix,
			"--addr", addr, "--images", "images", "--log-level", "warn")
		awaitReadyz(t, url, http.StatusOK, time.Minute)
		return cmd
	}
	api := startAPIProcess()

	outDir := filepath.Join(browserDir, "out")
	node := exec.Command("node", "dashboard.mjs", url, outDir)
	node.Dir = browserDir
	node.Env = append(os.Environ(), "PICSTATS_CHROMIUM="+chromium)
	node.Stderr = testWriter{t}
	toNode, _ := node.StdinPipe()
	fromNode, _ := node.StdoutPipe()
	if err := dieWithTest(node).Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Process.Kill() })
	// Every step of the script has its own timeout; this one bounds the
	// whole session, so that a hang fails the test instead of the suite.
	watchdog := time.AfterFunc(4*time.Minute, func() {
		t.Errorf("the browser session took more than 4 minutes; killed")
		_ = node.Process.Kill()
	})
	defer watchdog.Stop()
	sc := bufio.NewScanner(fromNode)
	for sc.Scan() {
		line := sc.Text()
		t.Log("browser: " + line)
		if line == "RESTART API" {
			stopGracefully(t, api)
			api = startAPIProcess()
			_, _ = io.WriteString(toNode, "RESTARTED\n")
		}
	}
	if err := node.Wait(); err != nil {
		t.Fatalf("the browser session failed (%v); its lines are above", err)
	}
	for _, shot := range []string{"dashboard.png", "dashboard-phone.png"} {
		if fi, err := os.Stat(filepath.Join(outDir, shot)); err != nil || fi.Size() == 0 {
			t.Fatalf("no screenshot %s: %v", shot, err)
		}
	}
	t.Logf("screenshots: %s/dashboard.png, %s/dashboard-phone.png", outDir, outDir)
}

// pictureIDs are the ids of the real images.
func pictureIDs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../images/*.jpg")
	if err != nil || len(files) == 0 {
		t.Fatalf("no pictures in ../images: %v", err)
	}
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = strings.TrimSuffix(filepath.Base(f), ".jpg")
	}
	return ids
}

// pictureRecords are n registrations of the real images for topic, with
// timestamp at.
func pictureRecords(t *testing.T, topic string, n int, at time.Time) []*kgo.Record {
	ids := pictureIDs(t)
	rng := rand.New(rand.NewPCG(uint64(at.Unix()), 9))
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: codec.Encode(codec.Registration{PictureID: ids[rng.IntN(len(ids))], Weight: 20 + rng.Int64N(4980)}), Topic: topic, Timestamp: at}
	}
	return recs
}

// feedPictures produces registrations of the real images at rate per second
// until the test ends.
func feedPictures(t *testing.T, cfg cluster.Config, rate int) {
	t.Helper()
	ids := pictureIDs(t)
	cl, err := cfg.Client(kgo.DefaultProduceTopic(string(cfg.Names.Pictures)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(8, 8))
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			id := ids[rng.IntN(len(ids))]
			cl.Produce(ctx, &kgo.Record{Value: codec.Encode(codec.Registration{PictureID: id, Weight: 20 + rng.Int64N(4980)})}, nil)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
}
