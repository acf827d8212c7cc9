package benchkit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
)

// FreePorts returns n distinct free TCP ports on 127.0.0.1.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer l.Close() // held until all are chosen, so that they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Get returns the body of a GET of url; an answer other than 200 is an
// error that quotes the start of the body.
func Get(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s %s", url, resp.Status, b[:min(len(b), 200)])
	}
	return b, err
}

// ParseCount reads the count statistic's result, {"registrations":N}, as
// the API, the stats topic and the websocket carry it.
func ParseCount(raw []byte) (int64, bool) {
	var c struct {
		Registrations *int64 `json:"registrations"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Registrations == nil {
		return 0, false
	}
	return *c.Registrations, true
}

// GetCount asks the API at base for the count statistic.
func GetCount(ctx context.Context, hc *http.Client, base string) (int64, error) {
	b, err := Get(ctx, hc, base+"/api/stats/count")
	if err != nil {
		return 0, err
	}
	n, ok := ParseCount(b)
	if !ok {
		return 0, fmt.Errorf("unexpected count result %.80s", b)
	}
	return n, nil
}
