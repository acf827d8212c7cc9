package stats

import (
	"slices"
	"strings"
	"testing"
)

func TestRegisterRefuses(t *testing.T) {
	newCount := func() Stat { return new(Count) }
	tests := []struct {
		name string
		kind Kind
		want string
	}{
		{"duplicate", Kind{Name: "count", Description: "again", New: newCount}, "registered twice"},
		{"upper case", Kind{Name: "Count2", Description: "x", New: newCount}, "must match"},
		{"empty name", Kind{Name: "", Description: "x", New: newCount}, "must match"},
		{"dash", Kind{Name: "a-b", Description: "x", New: newCount}, "must match"},
		{"no description", Kind{Name: "fresh", New: newCount}, "one-line description"},
		{"two-line description", Kind{Name: "fresh", Description: "a\nb", New: newCount}, "one-line description"},
		{"no constructor", Kind{Name: "fresh", Description: "x"}, "no New"},
		{"nil aggregate", Kind{Name: "fresh", Description: "x", New: func() Stat { return nil }}, "returned nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), tt.want) {
					t.Fatalf("Register(%+v) panicked with %v, want a panic containing %q", tt.kind, r, tt.want)
				}
				if _, ok := Lookup("fresh"); ok {
					t.Fatal("a refused statistic was registered")
				}
			}()
			Register(tt.kind)
		})
	}
}

func TestAllIsSortedAndComplete(t *testing.T) {
	names := Names(All())
	if !slices.IsSorted(names) {
		t.Fatalf("All() not sorted: %v", names)
	}
	for _, want := range []string{"count", "average_weight", "min_weight", "max_weight", "rejected"} {
		if !slices.Contains(names, want) {
			t.Errorf("statistic %q is not registered (have %v)", want, names)
		}
	}
}

func TestSelect(t *testing.T) {
	all := Names(All())
	tests := []struct {
		spec    string
		want    []string
		wantErr string
	}{
		{"all", all, ""},
		{"count", []string{"count"}, ""},
		{" max_weight , count ", []string{"count", "max_weight"}, ""},
		{"count,count", []string{"count"}, ""},
		{"all,-pictures", slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == "pictures" }), ""},
		{"median", nil, `unknown statistic "median" (known: ` + strings.Join(all, ", ")},
		{"all,-median", nil, `unknown statistic "median"`},
		{"", nil, "empty statistic name"},
		{"count,", nil, "empty statistic name"},
		{"count,-count", nil, "selects no statistic"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			kinds, err := Select(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Select(%q) error %v, want one containing %q", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(Names(kinds), tt.want) {
				t.Fatalf("Select(%q) = %v, %v; want %v", tt.spec, Names(kinds), err, tt.want)
			}
		})
	}
}
