package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gorilla/websocket"

	"github.com/picstats/picstats/api"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/internal/apicontract"
	"github.com/picstats/picstats/internal/testkafka"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
)

// contract checks every answer the suite gets through apiClient against the
// API's OpenAPI description (api/openapi.json, served at /api/openapi.json).
var contract = func() *apicontract.Transport {
	v, err := apicontract.New(api.OpenAPIDocument())
	if err != nil {
		panic(err)
	}
	return &apicontract.Transport{Validator: v}
}()

// apiClient is the client of every request the suite makes to the API
// (getJSON, readyz): an answer that breaks the OpenAPI description is an
// error of the request, and fails the run (TestMain).
var apiClient = &http.Client{Transport: contract}

// TestMain fails the run if any answer broke the OpenAPI description, even
// one a polling loop retried past.
func TestMain(m *testing.M) {
	code := m.Run()
	if ms := contract.Mismatches(); len(ms) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d answers of the API broke api/openapi.json:\n", len(ms))
		for _, err := range ms {
			fmt.Fprintf(os.Stderr, "  %v\n", err)
		}
		code = 1
	}
	os.Exit(code)
}

// TestAPIAnswersMatchOpenAPI asks every route of a running API, on a real
// broker and processor, before and after records arrive, errors included,
// and checks each answer against the OpenAPI description.
func TestAPIAnswersMatchOpenAPI(t *testing.T) {
	cfg := testkafka.Start(t)
	if err := cluster.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	startProcessor(t, cfg, processor.WithBatchSize(100))
	url := startAPI(t, cfg)
	ask := func(method, path string, header http.Header) int {
		t.Helper()
		req, err := http.NewRequest(method, url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := apiClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	everything := func() {
		t.Helper()
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			for _, p := range []string{"/api/stats", "/api/statistics", "/api/openapi.json", "/healthz", "/readyz",
				"/", "/static/app.js", "/static/style.css", "/static/nope.css", "/images/000000243626.jpg", "/nope"} {
				ask(m, p, nil)
			}
			for _, k := range stats.All() {
				ask(m, "/api/stats/"+k.Name, nil)
			}
			ask(m, "/api/stats/nope", nil)
		}
		ask(http.MethodGet, "/api/ws", nil) // not a websocket handshake: 400
		ask(http.MethodGet, "/api/ws", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
			"Origin": {"https://elsewhere.example"}}) // 403
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			ask(m, "/api/stats", nil)
			ask(m, "/api/stats/count", nil)
		}
	}
	everything() // while the View may still be recovering
	f := newFeed(rand.New(rand.NewPCG(16, 3)), string(cfg.Names.Pictures), 3_000)
	produce(t, cfg, f.records)
	waitForTotal(t, url, f.total(), time.Minute)
	awaitReadyz(t, url, http.StatusOK, time.Minute)
	everything()

	// The websocket's messages, which no HTTP client sees: the snapshot and
	// an update must be WebsocketMessages.
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols || contract.Validator.Doc.Paths.Value("/api/ws").Get.Responses.Status(resp.StatusCode) == nil {
		t.Errorf("the websocket handshake answered %d, which api/openapi.json does not list", resp.StatusCode)
	}
	schema := contract.Validator.Doc.Components.Schemas["WebsocketMessage"].Value
	more := newFeed(rand.New(rand.NewPCG(16, 4)), string(cfg.Names.Pictures), 100)
	for i := range 2 {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(msg, &v); err != nil {
			t.Fatal(err)
		}
		if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
			t.Errorf("websocket message %d breaks components/schemas/WebsocketMessage: %.300s\n%v", i, msg, err)
		}
		if i == 0 {
			produce(t, cfg, more.records) // for an update
		}
	}

	// A subscription (a WebsocketSubscribe), its snapshot — a range, a
	// window list and a range that cannot be answered — and a refusal.
	for _, sub := range [][]string{
		{"count", "average_weight?from=-1h", "count/windows?size=1h", "count?from=2000-01-01T00:00:00Z"},
		{"nope?from=-1h"},
	} {
		msg := map[string]any{"v": 1, "type": "subscribe", "stats": sub}
		if err := contract.Validator.Doc.Components.Schemas["WebsocketSubscribe"].Value.VisitJSON(roundTrip(t, msg), openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("our subscription breaks components/schemas/WebsocketSubscribe: %v", err)
		}
		if err := conn.WriteJSON(msg); err != nil {
			t.Fatal(err)
		}
		for {
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, b, err := conn.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			var m struct{ Type string }
			v := roundTrip(t, json.RawMessage(b))
			_ = json.Unmarshal(b, &m)
			if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
				t.Errorf("websocket message breaks components/schemas/WebsocketMessage: %.300s\n%v", b, err)
			}
			if m.Type == "snapshot" || m.Type == "error" {
				if want := map[bool]string{true: "snapshot", false: "error"}[sub[0] == "count"]; m.Type != want {
					t.Errorf("subscription %v answered with %.300s, want a %s", sub, b, want)
				}
				break
			}
		}
	}

	if ms := contract.Mismatches(); len(ms) > 0 {
		t.Fatalf("%d answers broke api/openapi.json, the first: %v", len(ms), ms[0])
	}
}

// roundTrip is v as JSON Schema validation sees decoded JSON.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
