package api

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The serving side reads the table's formats from package table and never
// depends on the aggregation runtime.
func TestAPIDoesNotImportTheProcessor(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, pkg := range []string{"github.com/picstats/picstats/processor"} {
		if slices.Contains(deps, pkg) {
			t.Errorf("api depends on %s", pkg)
		}
	}
	if !slices.Contains(deps, "github.com/picstats/picstats/table") {
		t.Error("api does not read the table's formats from package table")
	}
}
