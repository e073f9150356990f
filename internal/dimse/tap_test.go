package dimse

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"
)

// tapChecker is a checker that is also a StoreStarter: every data set's
// bytes must reach its tap exactly as they arrive, and the tap must end
// either in Store (req.Tap set) or in its Close, once.
type tapChecker struct {
	*checker
	mu   sync.Mutex
	taps map[string]*recTap
}

type recTap struct {
	mu     *sync.Mutex // the tapChecker's
	got    []byte
	kept   [][]byte // the slices Data got, not copied: they must not change before Store or Close
	closed int
	stored int
}

// unchanged reports whether the slices Data got still hold what they held
// then (DataSetTap: until Store returns or Close).
func (t *recTap) unchanged() bool { return bytes.Equal(bytes.Join(t.kept, nil), t.got) }

func (c *tapChecker) StartStore(ctx context.Context, req *StoreRequest) DataSetTap {
	if req.DataSet != nil || req.DataSetPath != "" || req.DataSetSize != 0 {
		c.t.Errorf("%s: StartStore saw data set fields", req.SOPInstanceUID)
	}
	t := &recTap{mu: &c.mu}
	c.mu.Lock()
	c.taps[req.SOPInstanceUID] = t
	c.mu.Unlock()
	return t
}

func (t *recTap) Data(p []byte) {
	t.mu.Lock()
	t.got = append(t.got, p...)
	t.kept = append(t.kept, p)
	t.mu.Unlock()
}

func (t *recTap) Close() {
	t.mu.Lock()
	t.closed++
	if !t.unchanged() {
		t.closed += 1000 // the test's check of closed fails
	}
	t.mu.Unlock()
}

func (c *tapChecker) Store(ctx context.Context, req *StoreRequest) (uint16, error) {
	c.mu.Lock()
	tap := c.taps[req.SOPInstanceUID]
	c.mu.Unlock()
	if tap == nil || req.Tap != tap {
		c.t.Errorf("%s: Store without its tap (%v)", req.SOPInstanceUID, req.Tap)
		return 0xC000, nil
	}
	c.mu.Lock()
	tap.stored++
	if !tap.unchanged() {
		c.t.Errorf("%s: bytes given to the tap changed before Store", req.SOPInstanceUID)
	}
	c.mu.Unlock()
	v, _ := c.want.Load(req.SOPInstanceUID)
	want, _ := v.([]byte)
	switch {
	case req.DataSetPath == "" && !bytes.Equal(tap.got, want):
		c.t.Errorf("%s: the tap got %d bytes, not the %d of the data set", req.SOPInstanceUID, len(tap.got), len(want))
	case req.DataSetPath != "" && (len(tap.got) > int(c.limit) || !bytes.HasPrefix(want, tap.got)):
		c.t.Errorf("%s: spilled, the tap got %d bytes that are not the data set's first ones", req.SOPInstanceUID, len(tap.got))
	}
	return c.checker.Store(ctx, req)
}

// A StoreStarter's tap gets exactly the data set's bytes, in order, for
// every cut of PDVs, while the data set stays in memory; it stops getting
// them when the data set spills to a temp file (DataSetPath then tells
// the handler); Store gets it in req.Tap and the server never closes it.
func TestStoreStarterTapGetsTheDataSet(t *testing.T) {
	const L = 4096
	tmp := t.TempDir()
	c := &tapChecker{checker: &checker{t: t, limit: L}, taps: map[string]*recTap{}}
	s, addr := startServer(t, Config{MemoryDataSetLimit: L, TempDir: tmp}, c)
	cl, pcID := edgeDial(t, addr, "TAP")
	cases := []struct {
		n    int
		pdus [][]int
	}{
		{0, [][]int{{0}}},
		{3, [][]int{{0, 1}, {0}, {2, 0}}},
		{L, split(L, 1, 64)},
		{L, [][]int{{L - 7, 7}, {0}}},
		{L + 1, [][]int{{L}, {1}}},
		{3*L + 5, split(3*L+5, 1000, 3)},
		{1000, split(1000, 17, 5)},
	}
	for i, k := range cases {
		u := fmt.Sprintf("1.2.77.%d", i)
		ds := pattern(i, k.n)
		c.expect(u, ds)
		if st := rawStore(t, cl, pcID, u, ds, k.pdus); st != 0 {
			t.Errorf("case %d: status 0x%04X", i, st)
		}
	}
	cl.Release(context.Background())
	waitIdle(t, s)
	for i := range cases {
		tap := c.taps[fmt.Sprintf("1.2.77.%d", i)]
		if tap == nil || tap.stored != 1 || tap.closed != 0 {
			t.Errorf("case %d: tap %+v, want stored once and never closed by the server", i, tap)
		}
	}
	assertEmptyDir(t, tmp)
}

// A spool that spills to its temp file after its tap got bytes does not
// give its buffer back for reuse: the tap may read them until Store or
// Close (DataSetTap.Data).
func TestSpoolSpillKeepsTappedBytes(t *testing.T) {
	tap := &recTap{mu: &sync.Mutex{}}
	sp := &spool{dir: t.TempDir(), limit: 100, tap: tap}
	defer sp.release()
	first := pattern(3, 80)
	if _, err := sp.Write(first); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Write(pattern(4, 50)); err != nil { // spills
		t.Fatal(err)
	}
	if sp.f == nil || sp.tap != nil {
		t.Fatalf("spool did not spill (file %v, tap %v)", sp.f, sp.tap)
	}
	// Whatever the pool hands out next must not be the tapped memory.
	for range 4 {
		if b, ok := spoolBufs.Get().(*[]byte); ok {
			buf := (*b)[:cap(*b)]
			for i := range buf {
				buf[i] = 0xFF
			}
		}
	}
	if !tap.unchanged() || !bytes.Equal(tap.got, first) {
		t.Errorf("tapped bytes changed after the spill: %x, want %x", bytes.Join(tap.kept, nil), first)
	}
}

// When the association breaks mid data set (closed or aborted), the tap is
// closed exactly once and Store is never called for it.
func TestStoreStarterTapClosedOnBrokenAssociation(t *testing.T) {
	const L = 4096
	for _, abort := range []bool{false, true} {
		tmp := t.TempDir()
		c := &tapChecker{checker: &checker{t: t, limit: L}, taps: map[string]*recTap{}}
		s, addr := startServer(t, Config{MemoryDataSetLimit: L, TempDir: tmp}, c)
		cl, pcID := edgeDial(t, addr, "BROKEN")
		u := "1.2.78.1"
		c.expect(u, nil)
		writeRawCommand(t, cl, pcID, u)
		pdu := []byte{pduPDataTF, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(pdu[2:], uint32(1000+6))
		pdu = binary.BigEndian.AppendUint32(pdu, uint32(1000+2))
		pdu = append(pdu, pcID, 0)
		pdu = append(pdu, pattern(1, 1000)...)
		if err := cl.c.write(pdu); err != nil {
			t.Fatal(err)
		}
		if abort {
			if err := cl.c.write(encodeSimple(pduAbort, 0, abortSourceUser, 0)); err != nil {
				t.Fatal(err)
			}
		}
		cl.c.close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			c.mu.Lock()
			tap := c.taps[u]
			closed := tap != nil && tap.closed > 0
			c.mu.Unlock()
			if closed || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		waitIdle(t, s)
		tap := c.taps[u]
		if tap == nil || tap.closed != 1 || tap.stored != 0 || !bytes.Equal(tap.got, pattern(1, 1000)) {
			t.Errorf("abort=%v: tap %+v, want closed once, never stored, with the 1000 bytes sent", abort, tap)
		}
		if len(c.stored()) != 0 {
			t.Errorf("abort=%v: Store called for a broken data set", abort)
		}
		assertEmptyDir(t, tmp)
	}
}
