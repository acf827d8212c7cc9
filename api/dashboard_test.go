package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
)

func newTestServer() *Server {
	return New(stats.All(), slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// wantJSONError fails unless the answer is a JSON error with that status
// whose message contains contains.
func wantJSONError(t *testing.T, resp *http.Response, status int, contains string) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var body struct{ Error string }
	if err := json.Unmarshal(b, &body); err != nil || body.Error == "" {
		t.Fatalf("body %q is not a JSON error: %v", b, err)
	}
	if !strings.Contains(body.Error, contains) {
		t.Fatalf("error %q, want it to contain %q", body.Error, contains)
	}
}

func TestDashboardFiles(t *testing.T) {
	h := newTestServer().Handler()
	tests := []struct {
		name      string
		method    string
		path      string
		wantType  string
		wantInBod []string
	}{
		{"page", "GET", "/", "text/html; charset=utf-8", []string{`id="conn"`, `data-state="connecting"`, `id="total"`, `id="average"`, `id="tiles"`, `id="updated"`, `/static/app.js`, `/static/style.css`}},
		{"page HEAD", "HEAD", "/", "text/html; charset=utf-8", nil},
		{"script", "GET", "/static/app.js", "text/javascript; charset=utf-8", []string{`"/api/ws"`, `"/api/statistics"`, `data-stat`}},
		{"style", "GET", "/static/style.css", "text/css; charset=utf-8", []string{`@media (max-width: 600px)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, h, tt.method, tt.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != tt.wantType {
				t.Errorf("Content-Type %q, want %q", ct, tt.wantType)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no X-Content-Type-Options: nosniff")
			}
			for _, s := range tt.wantInBod {
				if !strings.Contains(rec.Body.String(), s) {
					t.Errorf("body has no %s", s)
				}
			}
			etag := rec.Header().Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			again := get(t, h, "GET", tt.path, http.Header{"If-None-Match": {etag}})
			if again.Code != http.StatusNotModified {
				t.Errorf("with If-None-Match: status %d, want 304", again.Code)
			}
		})
	}

	page := get(t, h, "GET", "/", nil)
	csp := page.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("page Content-Security-Policy %q does not keep the page to its own origin", csp)
	}
}

func TestDashboardFilesNotFound(t *testing.T) {
	h := newTestServer().Handler()
	for _, path := range []string{"/static/", "/static/nope.js", "/static/../api.go", "/static/web/app.js", "/index.html", "/static/.", "/dashboard.go"} {
		t.Run(path, func(t *testing.T) {
			rec := get(t, h, "GET", path, nil)
			if rec.Code == http.StatusMovedPermanently { // gorilla/mux cleans paths with ".." by a redirect
				return
			}
			wantJSONError(t, rec.Result(), http.StatusNotFound, "")
		})
	}
	wantJSONError(t, get(t, h, "POST", "/", nil).Result(), http.StatusMethodNotAllowed, "method POST not allowed")
}

// jpeg is the start of a JPEG file: enough for the server, which sends bytes.
var jpeg = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9")

func TestImages(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "images")
	must(t, os.Mkdir(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "000000243626.jpg"), jpeg, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "a_b-c.d.jpg"), jpeg, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "x.png"), jpeg, 0o644))
	must(t, os.WriteFile(filepath.Join(root, "secret.jpg"), []byte("TOP-SECRET-CONTENT"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "go.mod"), []byte("module TOP-SECRET-CONTENT"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "folder.jpg"), 0o755))
	if err := os.Symlink(filepath.Join(root, "secret.jpg"), filepath.Join(dir, "escape.jpg")); err != nil {
		t.Logf("no symbolic link test: %v", err)
	}
	s := newTestServer()
	s.ServeImages(dir)
	h := s.Handler()

	t.Run("a picture", func(t *testing.T) {
		rec := get(t, h, "GET", "/images/000000243626.jpg", nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "image/jpeg" {
			t.Errorf("Content-Type %q, want image/jpeg", ct)
		}
		if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=86400") || !strings.Contains(cc, "public") || !strings.Contains(cc, "immutable") {
			t.Errorf("Cache-Control %q, want public, max-age=86400, immutable", cc)
		}
		if lm := rec.Header().Get("Last-Modified"); lm == "" {
			t.Error("no Last-Modified")
		}
		if !bytes.Equal(rec.Body.Bytes(), jpeg) {
			t.Errorf("body %q, want the file", rec.Body)
		}
		etag := rec.Header().Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		again := get(t, h, "GET", "/images/000000243626.jpg", http.Header{"If-None-Match": {etag}})
		if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("with If-None-Match: status %d and %d bytes, want 304 and none", again.Code, again.Body.Len())
		}
		since := get(t, h, "GET", "/images/000000243626.jpg", http.Header{"If-Modified-Since": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}})
		if since.Code != http.StatusNotModified {
			t.Errorf("with If-Modified-Since: status %d, want 304", since.Code)
		}
		head := get(t, h, "HEAD", "/images/a_b-c.d.jpg", nil)
		if head.Code != http.StatusOK || head.Body.Len() != 0 {
			t.Errorf("HEAD: status %d and %d bytes, want 200 and none", head.Code, head.Body.Len())
		}
	})

	notFound := []struct {
		name string
		path string
	}{
		{"encoded slash up", "/images/..%2fgo.mod"},
		{"encoded slash up to a jpg", "/images/..%2fsecret.jpg"},
		{"dot dot", "/images/../go.mod"},
		{"dot dot to a jpg", "/images/../secret.jpg"},
		{"encoded dot dot", "/images/%2e%2e/secret.jpg"},
		{"backslash", "/images/..%5csecret.jpg"},
		{"absolute", "/images/%2fetc%2fpasswd.jpg"},
		{"subfolder", "/images/sub/000000243626.jpg"},
		{"not a jpg", "/images/x.png"},
		{"no name", "/images/.jpg"},
		{"nothing", "/images/"},
		{"upper case extension", "/images/000000243626.JPG"},
		{"nul", "/images/a%00.jpg"},
		{"missing", "/images/000000000000.jpg"},
		{"a folder", "/images/folder.jpg"},
		{"a symbolic link out of the folder", "/images/escape.jpg"},
	}
	for _, tt := range notFound {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, h, "GET", tt.path, nil)
			wantJSONError(t, rec.Result(), http.StatusNotFound, "")
			if strings.Contains(rec.Body.String(), "TOP-SECRET-CONTENT") {
				t.Errorf("body %s leaks a file outside the folder", rec.Body)
			}
		})
	}
	wantJSONError(t, get(t, h, "POST", "/images/000000243626.jpg", nil).Result(), http.StatusMethodNotAllowed, "method POST not allowed")
}

func TestImagesWithoutFolder(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*Server)
		want  string
	}{
		{"ServeImages never called", func(*Server) {}, "no images folder is configured"},
		{"empty folder name", func(s *Server) { s.ServeImages("") }, "no images folder is configured"},
		{"missing folder", func(s *Server) { s.ServeImages(filepath.Join(t.TempDir(), "nope")) }, "no picture 000000243626.jpg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer()
			tt.setup(s)
			wantJSONError(t, get(t, s.Handler(), "GET", "/images/000000243626.jpg", nil).Result(), http.StatusNotFound, tt.want)
		})
	}
}

// nodeOrSkip returns node's path, or skips the test when node is missing.
func nodeOrSkip(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node (Node.js 20) is not on PATH: the dashboard's JavaScript is not checked; install Node.js to run this test")
	}
	return node
}

func TestDashboardScriptParses(t *testing.T) {
	node := nodeOrSkip(t)
	if out, err := exec.Command(node, "--check", filepath.Join("web", "app.js")).CombinedOutput(); err != nil {
		t.Fatalf("node --check web/app.js: %v\n%s", err, out)
	}
}

// shapesScript loads app.js in node (no DOM: it only exports its pure
// functions there) and answers the renderer shape of every result on stdin.
const shapesScript = `
const app = require(process.argv[1]);
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const out = {};
  for (const [name, result] of Object.entries(JSON.parse(input))) out[name] = app.shapeOf(result);
  out["$grams"] = app.formatGrams(2512.3456);
  out["$int"] = app.formatNumber(1234567);
  out["$undefined"] = app.shapeOf(undefined);
  process.stdout.write(JSON.stringify(out));
});
`

// TestDashboardShapes checks that each real statistic result, as the API
// sends it, gets the renderer meant for its shape.
func TestDashboardShapes(t *testing.T) {
	node := nodeOrSkip(t)
	base := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	regs := []stats.Record{
		{Registration: codec.Registration{PictureID: "000000243626", Weight: 120}, Time: base},
		{Registration: codec.Registration{PictureID: "000001571824", Weight: 2480}, Time: base.Add(time.Minute)},
		{Registration: codec.Registration{PictureID: "000000243626", Weight: 3000}, Time: base.Add(2 * time.Minute)},
		{Rejected: codec.ReasonInvalidWeight, Time: base},
	}
	results := map[string]any{}
	for _, k := range stats.All() {
		s := k.New()
		results["empty "+k.Name] = s.Result()
		for i := range regs {
			r := regs[i]
			s.Add(&r)
		}
		results[k.Name] = s.Result()
	}
	in, err := json.Marshal(results)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(filepath.Join("web", "app.js"))
	cmd := exec.Command(node, "-e", shapesScript, abs)
	cmd.Env = append(os.Environ(), "LANG=en_US.UTF-8", "LC_ALL=en_US.UTF-8")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	t.Logf("shapes: %s", out)
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node said %q: %v", out, err)
	}

	want := map[string]string{
		"weight_histogram":          "buckets",
		"top_pictures":              "ranked",
		"pictures":                  "pictures",
		"count":                     "fields",
		"average_weight":            "fields",
		"weight_percentiles":        "fields",
		"rejected":                  "fields",
		"latest_registration":       "fields",
		"empty max_weight":          "empty",
		"empty latest_registration": "empty",
		"$undefined":                "empty",
	}
	for name, shape := range want {
		if _, ok := got[name]; !ok && !strings.HasPrefix(name, "$") {
			continue // a statistic left out of this build
		}
		if got[name] != shape {
			t.Errorf("%s: shape %q, want %q (result %s)", name, got[name], shape, mustJSON(results[name]))
		}
	}
	known := map[string]bool{"empty": true, "fields": true, "buckets": true, "ranked": true, "pictures": true}
	for name, shape := range got {
		if !strings.HasPrefix(name, "$") && !known[shape] {
			t.Errorf("%s: unknown shape %q", name, shape)
		}
	}
	if got["$grams"] != "2,512.3" {
		t.Errorf("formatGrams(2512.3456) = %q, want 2,512.3", got["$grams"])
	}
	if got["$int"] != "1,234,567" {
		t.Errorf("formatNumber(1234567) = %q, want 1,234,567", got["$int"])
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDashboardTopics checks what the page subscribes to under each range
// and how it reads a range answer, against real answers of the API.
func TestDashboardTopics(t *testing.T) {
	node := nodeOrSkip(t)
	now := time.Now().UTC()
	s := newWindowedServer(t)
	tbl := windowedTable(t, []time.Time{now, now.Add(-2 * time.Hour)}, 100, 300)
	s.SetTable(tbl)
	s.MarkRecovered()
	h := s.Handler()
	answer := func(path string) json.RawMessage {
		rec := get(t, h, http.MethodGet, path, nil)
		return json.RawMessage(rec.Body.Bytes())
	}
	in := map[string]json.RawMessage{
		"range":   answer("/api/stats/average_weight?from=-1h"),
		"error":   answer("/api/stats/count?from=2000-01-01T00:00:00Z"),
		"plain":   answer("/api/stats/count"),
		"windows": answer("/api/stats/average_weight/windows?size=1h"),
	}
	const script = `
const app = require(process.argv[1]);
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const a = JSON.parse(input);
  process.stdout.write(JSON.stringify({
    all: app.topicOf("count", "all", ["1m"]),
    hour: app.topicOf("count", "1h", ["1m", "1h"]),
    week: app.topicOf("count", "7d", ["1m"]),
    unwindowed: app.topicOf("pictures", "24h", []),
    chart: app.chartTopic({ stat: "count", size: "1h" }),
    noChart: app.chartTopic({ stat: "", size: "" }),
    range: app.unwrap(a.range),
    error: app.unwrap(a.error),
    plain: app.unwrap(a.plain),
    fields: app.numericFields(a.windows),
    sizes: [60, 3600, 86400, 7200].map(app.sizeLabel),
  }));
});`
	abs, _ := filepath.Abs(filepath.Join("web", "app.js"))
	cmd := exec.Command(node, "-e", script, abs)
	b, _ := json.Marshal(in)
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got struct {
		All, Hour, Week, Unwindowed, Chart string
		NoChart                            *string
		Range                              struct {
			Result struct {
				AverageWeightGrams float64 `json:"average_weight_grams"`
			}
			Range struct{ WindowSeconds, Records int64 }
		}
		Error struct{ Error string }
		Plain struct {
			Result struct{ Registrations int64 }
			Range  *struct{}
		}
		Fields []string
		Sizes  []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node said %s: %v", out, err)
	}
	for _, c := range [][2]string{
		{got.All, "count"}, {got.Hour, "count?from=-1h"}, {got.Week, "count?from=-168h"},
		{got.Unwindowed, "pictures"}, {got.Chart, "count/windows?size=1h"},
	} {
		if c[0] != c[1] {
			t.Errorf("topic %q, want %q", c[0], c[1])
		}
	}
	if got.NoChart != nil {
		t.Errorf("chart topic without a statistic: %q, want null", *got.NoChart)
	}
	if got.Range.Result.AverageWeightGrams != 100 || got.Range.Range.WindowSeconds != 60 || got.Range.Range.Records != 1 {
		t.Errorf("the last hour unwrapped to %+v, want the 100 g record from minute windows", got.Range)
	}
	if !strings.Contains(got.Error.Error, "no window size of count covers") {
		t.Errorf("an unanswerable range unwrapped to %+v, want its error", got.Error)
	}
	if got.Plain.Result.Registrations != 0 || got.Plain.Range != nil {
		t.Errorf("a plain result unwrapped to %+v, want it as it is, without a range", got.Plain)
	}
	if strings.Join(got.Fields, ",") != "average_weight_grams,total_weight_grams,registrations" {
		t.Errorf("numeric fields of average_weight's windows: %v", got.Fields)
	}
	if strings.Join(got.Sizes, ",") != "minute,hour,day,2 hours" {
		t.Errorf("size labels %v", got.Sizes)
	}
}
