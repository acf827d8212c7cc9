package processor

import (
	"sync"

	"github.com/lovoo/goka/storage"
)

// tableStores keeps the table stage's copies of the group table's
// partitions in memory across the stage's sessions, so that a partition it
// gets again in a rebalance is not replayed from the changelog's start.
//
// goka drops every partition at the end of a session (the table stage's
// rebalances are eager: every member gives up every partition) and
// recovers each one it is assigned in the next from its storage's offset
// on; with a fresh in-memory storage that is the whole changelog, up to two
// 16 MiB segments a partition (cluster.TableSegmentBytes) — seconds, for
// every partition, at every rebalance. A kept copy is read on from the
// offset up to which it is known to hold everything in the changelog
// (keptTable.joined), and the reading joins what it finds (recoverValue,
// table.Join), as a replay from the start would: the result is the same.
type tableStores struct {
	mu    sync.Mutex
	parts map[string]map[int32]*keptTable // by topic and partition
}

// builder is the goka storage builder of the group table.
func (t *tableStores) builder(topic string, partition int32) (storage.Storage, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.parts == nil {
		t.parts = map[string]map[int32]*keptTable{}
	}
	if t.parts[topic] == nil {
		t.parts[topic] = map[int32]*keptTable{}
	}
	k := t.parts[topic][partition]
	if k == nil {
		k = &keptTable{Storage: storage.NewMemory(), joined: -1, recovered: -1}
		t.parts[topic][partition] = k
	}
	return k, nil
}

// of returns the kept copy of a partition, nil if there is none.
func (t *tableStores) of(topic string, partition int32) *keptTable {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.parts[topic][partition]
}

// maxOwnAbove bounds the acknowledged own writes a keptTable remembers
// above a gap (a write of another instance it has not read): past it they
// are forgotten, and the next recovery reads from the gap on, as it would
// anyway.
const maxOwnAbove = 1 << 16

// keptTable is one partition's copy, which goka's Close leaves in place.
//
// Its offset (GetOffset, where goka's recovery reads on from) is joined:
// every changelog record at or below it is joined into the copy. A record
// counts once the update callback has joined it during a recovery, which
// reads the partition in order; or, for a record this instance wrote
// itself (goka reports each acknowledged table write's offset with
// SetOffset), once every offset between it and joined is such a record
// too: the copy is the latest value this instance wrote, which is ahead of
// or equal to every earlier one. A record of another writer in between (an
// old owner of the partition writing late) is not in the copy, so joined
// stops below it, and the next recovery reads it.
type keptTable struct {
	storage.Storage

	mu        sync.Mutex
	joined    int64          // -1: nothing
	recovered int64          // the record the update callback joined last, until SetOffset reports it
	own       map[int64]bool // acknowledged own writes above joined+1
}

// Open, Close: the copy stays open for the next session.
func (k *keptTable) Open() error  { return nil }
func (k *keptTable) Close() error { return nil }

func (k *keptTable) GetOffset(def int64) (int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.joined < 0 {
		return def, nil
	}
	return k.joined, nil
}

// recovering tells that the update callback has joined the record at
// offset (goka's SetOffset for it follows).
func (k *keptTable) recovering(offset int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.recovered = offset
}

func (k *keptTable) SetOffset(offset int64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if offset == k.recovered { // read in order from joined+1 (or the oldest record kept) on
		k.recovered = -1
		k.joined = max(k.joined, offset)
		for o := range k.own {
			if o <= k.joined {
				delete(k.own, o)
			}
		}
		k.advance()
		return nil
	}
	switch {
	case offset <= k.joined:
	case offset == k.joined+1:
		k.joined = offset
		k.advance()
	default:
		if k.own == nil || len(k.own) >= maxOwnAbove {
			k.own = map[int64]bool{}
		}
		k.own[offset] = true
	}
	return nil
}

// advance moves joined over the own writes that follow it; k.mu is held.
func (k *keptTable) advance() {
	for k.own[k.joined+1] {
		delete(k.own, k.joined+1)
		k.joined++
	}
}
