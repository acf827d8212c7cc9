package api

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// closingTable counts the Gets that reach it after the View it stands for
// has closed: each of them is a data race on a real goka View.
type closingTable struct {
	closed, late atomic.Int64
}

func (c *closingTable) Get(string) (any, error) {
	if c.closed.Load() != 0 {
		c.late.Add(1)
	}
	return nil, nil
}
func (c *closingTable) Recovered() bool { return true }

func TestGuardKeepsGetsAwayFromAClosingView(t *testing.T) {
	tbl := &closingTable{}
	g := &guarded{table: tbl}
	if !g.Recovered() {
		t.Fatal("an open guard over a recovered table is not ready")
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				_, _ = g.Get("count")
			}
		}()
	}
	g.close()
	tbl.closed.Store(1) // the View closes once the guard has
	for range 1000 {    // the readers keep asking meanwhile
		_, _ = g.Get("count")
	}
	stop.Store(true)
	wg.Wait()
	if n := tbl.late.Load(); n != 0 {
		t.Errorf("%d Gets reached the table after it closed", n)
	}
	if _, err := g.Get("count"); !errors.Is(err, errViewStopped) {
		t.Errorf("Get after close: %v, want %v", err, errViewStopped)
	}
	if g.Recovered() {
		t.Error("a closed guard says the table is ready")
	}
}
