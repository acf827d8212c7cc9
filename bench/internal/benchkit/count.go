package benchkit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

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
