package aggregator

import (
	"sync"
	"sync/atomic"
)

// names interns channel (or region) names as small ids. Id 0 is reserved for
// "none": no channel (standby, off) or no region. Ids are never reused.
//
// Writers keep their own unlocked cache in front of it (see Writer), so the
// lock is taken only the first time a writer meets a name.
type names struct {
	max int

	mu  sync.Mutex        // guards ids and appends to list
	ids map[string]uint32 // name → id

	list atomic.Pointer[[]string] // id → name; id 0 is ""; append-only
}

func newNames(max int) *names {
	n := &names{max: max, ids: make(map[string]uint32)}
	list := []string{""}
	n.list.Store(&list)
	return n
}

// intern returns the id of name, adding it if there is room. ok is false when
// name is new and the limit is reached.
func (n *names) intern(name []byte) (id uint32, ok bool) {
	if len(name) == 0 {
		return 0, true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if id, ok := n.ids[string(name)]; ok {
		return id, true
	}
	if len(n.ids) >= n.max {
		return 0, false
	}
	s := string(name)
	old := *n.list.Load()
	id = uint32(len(old))
	// Copy on append so that readers holding the old slice never see a
	// write; the amortized cost is paid once per new name.
	list := append(old[:len(old):len(old)], s)
	n.list.Store(&list)
	n.ids[s] = id
	return id, true
}

// lookup returns the id of a known name.
func (n *names) lookup(name string) (uint32, bool) {
	if name == "" {
		return 0, true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	id, ok := n.ids[name]
	return id, ok
}

// name returns the name of id ("" for 0 or an unknown id).
func (n *names) name(id uint32) string {
	list := *n.list.Load()
	if int(id) < len(list) {
		return list[id]
	}
	return ""
}

// all returns id → name for every interned name (index 0 is "").
func (n *names) all() []string { return *n.list.Load() }

func (n *names) len() int { return len(*n.list.Load()) - 1 }
