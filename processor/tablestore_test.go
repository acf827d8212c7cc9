package processor

import "testing"

// A kept copy's offset is where goka's next recovery of it reads on from:
// it may pass a record only once the copy holds it — read by a recovery,
// or written by this instance with every record between written or read
// too — and never a record of another writer it has not read.
func TestKeptTableOffsetPassesOnlyRecordsItHolds(t *testing.T) {
	var ts tableStores
	st, _ := ts.builder("t", 1)
	k := ts.of("t", 1)
	if k == nil || k != st {
		t.Fatal("the builder's storage is not the one kept")
	}
	if again, _ := ts.builder("t", 1); again != st {
		t.Fatal("a partition built again got a new storage")
	}
	if other, _ := ts.builder("t", 2); other == st {
		t.Fatal("two partitions share a storage")
	}
	offset := func() int64 {
		o, err := k.GetOffset(-2)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if offset() != -2 {
		t.Fatalf("a new copy has offset %d, want the default", offset())
	}
	recover := func(o int64) { k.recovering(o); _ = k.SetOffset(o) }
	for _, o := range []int64{3, 5, 9} { // compaction leaves gaps; a recovery reads all there is
		recover(o)
	}
	if offset() != 9 {
		t.Fatalf("after recovering to 9: %d", offset())
	}
	_ = k.SetOffset(10) // own writes, acknowledged in order
	_ = k.SetOffset(11)
	if offset() != 11 {
		t.Fatalf("after own writes 10, 11: %d", offset())
	}
	_ = k.SetOffset(13) // 12 is another writer's: not in the copy
	_ = k.SetOffset(14)
	if offset() != 11 {
		t.Fatalf("passed another writer's record 12: %d", offset())
	}
	recover(12) // the next recovery reads 12, then 13 and 14 are known
	if offset() != 14 {
		t.Fatalf("after recovering 12: %d, want 14", offset())
	}
	_ = k.SetOffset(16)
	_ = k.SetOffset(15) // out of order
	if offset() != 16 {
		t.Fatalf("after own writes 16, 15: %d", offset())
	}
	_ = k.SetOffset(7) // an old acknowledgement
	if offset() != 16 {
		t.Fatalf("went back to %d", offset())
	}
	if k.Close() != nil || k.Open() != nil {
		t.Fatal("Close or Open failed")
	}
	if err := k.Set("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	_ = k.Close()
	if v, _ := k.Get("k"); string(v) != "v" {
		t.Fatalf("Close dropped the copy: %q", v)
	}
	for o := int64(100); o < 100+maxOwnAbove+5; o++ { // own writes above a gap are bounded
		_ = k.SetOffset(o)
	}
	if len(k.own) > maxOwnAbove {
		t.Fatalf("%d own writes remembered", len(k.own))
	}
}
