package stats

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Kind describes one statistic: its name, what it means, and how to make an
// empty aggregate of it.
type Kind struct {
	// Name is the statistic's key in the table, on the stats topic and in the
	// API: lower case letters, digits and underscores, starting with a letter.
	Name string
	// Description is one line for people: what the statistic means and in
	// which unit.
	Description string
	// Version is stored in front of every encoded aggregate. Bump it whenever
	// the encoding changes: old state then fails loudly instead of being
	// misread.
	Version uint8
	// New returns an empty aggregate.
	New func() Stat
	// Windows are the window sizes the statistic is also kept over (see
	// Windowed): nil means DefaultWindows; NoWindows, none — for a
	// statistic whose state is too large to keep once per window.
	Windows []Window
}

// NoWindows declares a statistic that is kept over all time only.
var NoWindows = []Window{}

// WindowSizes returns the windows k is kept over.
func (k Kind) WindowSizes() []Window {
	if k.Windows == nil {
		return DefaultWindows
	}
	return k.Windows
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

var (
	mu    sync.RWMutex
	kinds = map[string]Kind{}
)

// Register adds a statistic to the registry. It panics on a malformed Kind or
// a duplicate name, since both are programming errors found at start-up.
func Register(k Kind) {
	if err := k.validate(); err != nil {
		panic(fmt.Sprintf("stats.Register: %v", err))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := kinds[k.Name]; dup {
		panic(fmt.Sprintf("stats.Register: statistic %q registered twice", k.Name))
	}
	kinds[k.Name] = k
}

func (k Kind) validate() error {
	switch {
	case !validName.MatchString(k.Name):
		return fmt.Errorf("statistic name %q must match %s", k.Name, validName)
	case strings.TrimSpace(k.Description) == "" || strings.Contains(k.Description, "\n"):
		return fmt.Errorf("statistic %q needs a one-line description", k.Name)
	case k.New == nil:
		return fmt.Errorf("statistic %q has no New function", k.Name)
	case k.New() == nil:
		return fmt.Errorf("statistic %q: New returned nil", k.Name)
	}
	for _, w := range k.Windows {
		if err := w.validate(); err != nil {
			return fmt.Errorf("statistic %q: %w", k.Name, err)
		}
	}
	return nil
}

// All returns every registered statistic, ordered by name.
func All() []Kind {
	mu.RLock()
	defer mu.RUnlock()
	all := make([]Kind, 0, len(kinds))
	for _, k := range kinds {
		all = append(all, k)
	}
	slices.SortFunc(all, func(a, b Kind) int { return strings.Compare(a.Name, b.Name) })
	return all
}

// Lookup returns the registered statistic with the given name.
func Lookup(name string) (Kind, bool) {
	mu.RLock()
	defer mu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// Names returns the names of kinds, in order.
func Names(ks []Kind) []string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Name
	}
	return names
}

// ErrVersion is returned when stored state was written by another version
// of a statistic's encoding.
var ErrVersion = errors.New("statistic encoding version mismatch")

// Encode returns the versioned encoding of s, which must be of this Kind.
func (k Kind) Encode(s Stat) ([]byte, error) {
	payload, err := s.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", k.Name, err)
	}
	return append([]byte{k.Version}, payload...), nil
}

// Decode restores an aggregate written by Encode. Empty data decodes to an
// empty aggregate, since a statistic without state has seen nothing.
func (k Kind) Decode(data []byte) (Stat, error) {
	s := k.New()
	if len(data) == 0 {
		return s, nil
	}
	if data[0] != k.Version {
		return nil, fmt.Errorf("decode %s: stored version %d, this build reads version %d: %w",
			k.Name, data[0], k.Version, ErrVersion)
	}
	if err := s.UnmarshalBinary(data[1:]); err != nil {
		return nil, fmt.Errorf("decode %s: %w", k.Name, err)
	}
	return s, nil
}

// Select returns the statistics that spec names, ordered by name. spec is
// "all" (every registered statistic) or a comma-separated list of names;
// "-name" removes one, so "all,-pictures" is every statistic but pictures.
func Select(spec string) ([]Kind, error) {
	chosen := map[string]Kind{}
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		name, remove := strings.CutPrefix(item, "-")
		switch {
		case item == "all":
			for _, k := range All() {
				chosen[k.Name] = k
			}
		case name == "":
			return nil, fmt.Errorf("empty statistic name in %q", spec)
		default:
			k, ok := Lookup(name)
			if !ok {
				return nil, fmt.Errorf("unknown statistic %q (known: %s)", name, strings.Join(Names(All()), ", "))
			}
			if remove {
				delete(chosen, name)
			} else {
				chosen[name] = k
			}
		}
	}
	if len(chosen) == 0 {
		return nil, fmt.Errorf("%q selects no statistic", spec)
	}
	out := make([]Kind, 0, len(chosen))
	for _, k := range All() {
		if _, ok := chosen[k.Name]; ok {
			out = append(out, k)
		}
	}
	return out, nil
}
