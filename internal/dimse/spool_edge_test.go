package dimse

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this file attack the in-memory spool (part10Room in front of
// the data set, PDVs read straight into the buffer, pooled buffers, spill
// to a temp file past MemoryDataSetLimit) and StoreRequest.Part10Bytes.

const edgeClass = "1.2.840.10008.5.1.4.1.1.7"

// pattern returns n bytes that differ per seed and per position, so that a
// data set that picked up bytes of another request, or bytes out of
// order, does not compare equal.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*131 + i*7 + i>>8)
	}
	return b
}

// checker is a StoreHandler that knows the data set every SOP Instance UID
// must arrive with, and checks each request against it: the bytes (in
// memory or in the temp file), whether it was kept in memory (at most
// limit bytes), and Part10Bytes against WritePart10 (built in place, in
// front of the received bytes, when in memory).
type checker struct {
	t     *testing.T
	limit int64
	want  sync.Map // SOP Instance UID → []byte

	mu   sync.Mutex
	seen []string
}

func (c *checker) expect(uid string, ds []byte) { c.want.Store(uid, ds) }

func (c *checker) stored() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

func (c *checker) Store(ctx context.Context, req *StoreRequest) (uint16, error) {
	t := c.t
	c.mu.Lock()
	c.seen = append(c.seen, req.SOPInstanceUID)
	c.mu.Unlock()
	v, ok := c.want.Load(req.SOPInstanceUID)
	if !ok {
		t.Errorf("%s: not expected", req.SOPInstanceUID)
		return 0xC000, nil
	}
	want := v.([]byte)
	fail := func(format string, a ...any) (uint16, error) {
		t.Errorf("%s (%d bytes): %s", req.SOPInstanceUID, len(want), fmt.Sprintf(format, a...))
		return 0xC000, nil
	}
	if req.DataSetSize != int64(len(want)) {
		return fail("DataSetSize %d", req.DataSetSize)
	}
	inMemory := int64(len(want)) <= c.limit
	if (req.DataSetPath == "") != inMemory {
		return fail("DataSetPath %q, want in memory %v", req.DataSetPath, inMemory)
	}
	if inMemory && !bytes.Equal(req.DataSet, want) {
		return fail("DataSet differs (%d bytes)", len(req.DataSet))
	}
	r, err := req.OpenDataSet()
	if err != nil {
		return fail("OpenDataSet: %v", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, want) {
		return fail("OpenDataSet gave %d bytes that differ (%v)", len(got), err)
	}
	var ref bytes.Buffer
	if _, err := WritePart10(&ref, req.FileMeta(), bytes.NewReader(want)); err != nil {
		return fail("WritePart10: %v", err)
	}
	for range 2 { // twice: Part10Bytes must be repeatable
		p10, ok, err := req.Part10Bytes()
		if err != nil || ok != inMemory {
			return fail("Part10Bytes: ok %v, %v", ok, err)
		}
		if !ok {
			break
		}
		if !bytes.Equal(p10, ref.Bytes()) {
			return fail("Part10Bytes: %d bytes differ from WritePart10's %d", len(p10), ref.Len())
		}
		if len(want) > 0 && &p10[len(p10)-len(want)] != &req.DataSet[0] {
			return fail("Part10Bytes copied the data set")
		}
		if len(want) > 0 && cap(p10) != len(p10) {
			return fail("Part10Bytes: capacity %d beyond its length %d: an append would write into the pooled buffer", cap(p10), len(p10))
		}
	}
	// The bytes of the data set itself must not have been touched.
	if inMemory && !bytes.Equal(req.DataSet, want) {
		return fail("DataSet changed by Part10Bytes")
	}
	return 0, nil
}

// rawStore sends one C-STORE-RQ on pcID whose data set ds is cut into the
// PDVs given by pdus: one P-DATA-TF PDU per element, holding one PDV per
// size listed (0 is an empty PDV, allowed by PS3.8). The sizes must add up
// to len(ds); the last PDV is marked last. It returns the response status.
func rawStore(t *testing.T, cl *Client, pcID byte, uid string, ds []byte, pdus [][]int) uint16 {
	t.Helper()
	writeRawCommand(t, cl, pcID, uid)
	off := 0
	for i, sizes := range pdus {
		var pdu []byte
		pdu = append(pdu, pduPDataTF, 0, 0, 0, 0, 0)
		for j, n := range sizes {
			mch := byte(0)
			if i == len(pdus)-1 && j == len(sizes)-1 {
				mch = 2
			}
			pdu = binary.BigEndian.AppendUint32(pdu, uint32(n+2))
			pdu = append(pdu, pcID, mch)
			pdu = append(pdu, ds[off:off+n]...)
			off += n
		}
		binary.BigEndian.PutUint32(pdu[2:], uint32(len(pdu)-pduHeaderLen))
		if err := cl.c.write(pdu); err != nil {
			t.Fatalf("%s: writing PDU %d: %v", uid, i, err)
		}
	}
	if off != len(ds) {
		t.Fatalf("%s: PDVs carry %d bytes of %d", uid, off, len(ds))
	}
	_, rsp, err := cl.c.readCommand()
	if err != nil {
		t.Fatalf("%s: reading C-STORE-RSP: %v", uid, err)
	}
	st, _ := rsp.us(tagStatus)
	if got := rsp.str(tagAffectedSOPInstanceUID); got != uid {
		t.Fatalf("response for %q, want %q", got, uid)
	}
	return st
}

func writeRawCommand(t *testing.T, cl *Client, pcID byte, uid string) {
	t.Helper()
	rq := command{}
	rq.setUS(tagCommandField, cmdCStoreRQ)
	rq.setUS(tagMessageID, 1)
	rq.setUI(tagAffectedSOPClassUID, edgeClass)
	rq.setUI(tagAffectedSOPInstanceUID, uid)
	rq.setUS(tagPriority, 0)
	rq.setUS(tagCommandDataSetType, 0)
	enc := rq.encode()
	if err := cl.c.writePDVs(pcID, true, bytes.NewReader(enc), int64(len(enc))); err != nil {
		t.Fatal(err)
	}
}

// split cuts n into PDVs of at most each bytes, packed per PDUs of at most
// perPDU PDVs.
func split(n, each, perPDU int) [][]int {
	var pdus [][]int
	var cur []int
	for n > 0 || len(pdus) == 0 && len(cur) == 0 {
		k := min(n, each)
		cur = append(cur, k)
		n -= k
		if len(cur) == perPDU || n == 0 {
			pdus = append(pdus, cur)
			cur = nil
		}
	}
	return pdus
}

func edgeServer(t *testing.T, limit int64, maxPDU uint32) (*Server, string, *checker, string) {
	t.Helper()
	tmp := t.TempDir()
	c := &checker{t: t, limit: limit}
	s, addr := startServer(t, Config{MemoryDataSetLimit: limit, MaxPDULength: maxPDU, TempDir: tmp}, c)
	return s, addr, c, tmp
}

func edgeDial(t *testing.T, addr, ae string) (*Client, byte) {
	t.Helper()
	cl := dial(t, addr, ClientConfig{CallingAETitle: ae}, []PresentationContext{{AbstractSyntax: edgeClass, TransferSyntaxes: []string{ExplicitVRLittleEndian}}})
	pc, err := cl.findContext(edgeClass, ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	return cl, pc.ID
}

// waitIdle shuts the server down gracefully (waiting for every association
// to end) so that what the associations left behind can be checked.
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left in the temp dir: %s", e.Name())
	}
}

// TestSpoolFragmentation sends data sets around MemoryDataSetLimit in
// every cut of PDVs that matters (empty data set, odd lengths, one byte
// per PDV, empty PDVs, a PDV that ends exactly at the limit, one that
// crosses it, the limit reached by the last byte, limit+1 as the last
// PDV) over one association, then the same in reverse order over a second
// one (pooled buffers reused with larger and smaller sizes, and with
// Part 10 headers of other lengths: SOP Instance UIDs of 3 to 64
// characters, Calling AE titles of 1 and 16), and checks every request
// against the exact bytes sent (checker). Nothing is left in TempDir.
func TestSpoolFragmentation(t *testing.T) {
	const L = 4096
	s, addr, c, tmp := edgeServer(t, L, 0)
	type tc struct {
		n    int
		pdus [][]int
	}
	cases := []tc{
		{0, [][]int{{0}}},
		{0, [][]int{{0, 0}, {0}}},
		{1, [][]int{{1}}},
		{3, [][]int{{0, 1}, {0}, {2, 0}}},
		{L, [][]int{{L}}},
		{L, split(L, 1, 64)},
		{L, [][]int{{L - 1}, {1}}},
		{L, [][]int{{L - 7, 7}, {0}}},
		{L - 1, [][]int{{L - 1}}},
		{L + 1, [][]int{{L + 1}}},
		{L + 1, [][]int{{L}, {1}}},
		{L + 1, [][]int{{L, 1}}},
		{L + 1, [][]int{{L}, {0}, {1}}},
		{L + 1, split(L+1, 1, 97)},
		{L + 10, [][]int{{L - 10, 20}, {0}}},
		{2*L + 3, [][]int{{L - 1}, {2, L}, {2}}},
		{2*L + 3, [][]int{{2*L + 3}}},
		{3*L + 5, split(3*L+5, 1000, 3)},
		{17, split(17, 4, 2)},
	}
	uid := func(assoc, i int) string {
		u := fmt.Sprintf("1.2.%d.%d", assoc, i)
		if i%3 == 0 { // 64 characters: the longest header
			u += "." + strings.Repeat("9", 64-len(u)-1)
		}
		return u
	}
	for assoc, ae := range []string{"A", "SIXTEEN-CHARS-AE"} {
		cl, pcID := edgeDial(t, addr, ae)
		order := make([]int, len(cases))
		for i := range order {
			order[i] = i
			if assoc == 1 {
				order[i] = len(cases) - 1 - i
			}
		}
		for _, i := range order {
			k := cases[i]
			u := uid(assoc, i)
			ds := pattern(assoc*1000+i, k.n)
			c.expect(u, ds)
			if st := rawStore(t, cl, pcID, u, ds, k.pdus); st != 0 {
				t.Errorf("case %d (%d bytes, PDVs %v): status 0x%04X", i, k.n, k.pdus, st)
			}
		}
		if err := cl.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, s)
	if got := len(c.stored()); got != 2*len(cases) {
		t.Errorf("handler called %d times, want %d", got, 2*len(cases))
	}
	assertEmptyDir(t, tmp)
}

// TestSpoolLargePDVs: with the default 256 KiB PDUs, a data set of exactly
// MemoryDataSetLimit made of full PDVs stays in memory and one byte more
// (in its own PDV, or at the end of a full one) spills.
func TestSpoolLargePDVs(t *testing.T) {
	const pdv = 256<<10 - 6 // the largest PDV the default 256 KiB PDU holds
	const L = 2*pdv + 1000
	s, addr, c, tmp := edgeServer(t, L, 0)
	cl, pcID := edgeDial(t, addr, "BIG")
	for i, k := range []struct {
		n    int
		pdus [][]int
	}{
		{L, [][]int{{pdv}, {pdv}, {1000}}},
		{L + 1, [][]int{{pdv}, {pdv}, {1000}, {1}}},
		{L + 1, [][]int{{pdv}, {pdv}, {1001}}},
		{L - 1, [][]int{{pdv}, {pdv}, {999}}},
		{L + pdv, [][]int{{pdv}, {pdv}, {1000}, {pdv}}},
		{10, [][]int{{10}}},
		{L, [][]int{{1000}, {pdv}, {pdv}}},
	} {
		u := fmt.Sprintf("1.2.99.%d", i)
		ds := pattern(i, k.n)
		c.expect(u, ds)
		if st := rawStore(t, cl, pcID, u, ds, k.pdus); st != 0 {
			t.Errorf("case %d: status 0x%04X", i, st)
		}
	}
	cl.Release(context.Background())
	waitIdle(t, s)
	assertEmptyDir(t, tmp)
}

// TestSpoolParallelAssociations: eight associations at once, each storing
// data sets of random sizes around the limit (seeded), with the server's
// smallest PDU (1 KiB: many PDVs per data set) and its default. Every
// request must see exactly its own bytes (run with -race).
func TestSpoolParallelAssociations(t *testing.T) {
	for _, maxPDU := range []uint32{MinPDULength, 0} {
		t.Run(fmt.Sprint("pdu", maxPDU), func(t *testing.T) {
			const L = 64 << 10
			s, addr, c, tmp := edgeServer(t, L, maxPDU)
			var wg sync.WaitGroup
			for a := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cl, err := Dial(context.Background(), addr, ClientConfig{CallingAETitle: fmt.Sprint("P", a)}, []PresentationContext{{AbstractSyntax: edgeClass, TransferSyntaxes: []string{ExplicitVRLittleEndian}}})
					if err != nil {
						t.Errorf("association %d: %v", a, err)
						return
					}
					rng := rand.New(rand.NewPCG(uint64(a), uint64(maxPDU)))
					for i := range 12 {
						n := 2 * rng.IntN(L) // even: the client pads odd sizes
						if i%4 == 3 {
							n = L + 2*rng.IntN(8)
						}
						u := fmt.Sprintf("1.2.%d.%d.%d", maxPDU, a, i)
						ds := pattern(a*100+i, n)
						c.expect(u, ds)
						st, err := cl.Store(context.Background(), edgeClass, u, ExplicitVRLittleEndian, bytes.NewReader(ds), int64(n))
						if err != nil || st != 0 {
							t.Errorf("%s: 0x%04X, %v", u, st, err)
						}
					}
					cl.Release(context.Background())
				}()
			}
			wg.Wait()
			waitIdle(t, s)
			if got := len(c.stored()); got != 8*12 {
				t.Errorf("handler called %d times, want %d", got, 8*12)
			}
			assertEmptyDir(t, tmp)
		})
	}
}

// TestSpoolBrokenMidDataSet: an association that dies in the middle of a
// data set — the connection closed inside a PDV (in memory, and after the
// spill to a file), or an A-ABORT between two PDVs — never reaches the
// handler and leaves no temp file; a later association on the same server
// (whose spool gets the recycled buffers) sees exactly its own bytes.
func TestSpoolBrokenMidDataSet(t *testing.T) {
	const L = 4096
	for _, tc := range []struct {
		name string
		// sent before breaking: whole PDVs (not last), then the header of a
		// PDV announcing announce bytes of which partial are sent
		whole    []int
		announce int
		partial  int
		abort    bool
	}{
		{name: "close inside the first PDV", announce: 3000, partial: 1500},
		{name: "close inside a PDV in memory", whole: []int{1000}, announce: 2000, partial: 1},
		{name: "close inside the PDV crossing the limit", whole: []int{L - 100}, announce: 1000, partial: 500},
		{name: "close after the spill", whole: []int{L, 1000}, announce: 1000, partial: 999},
		{name: "close right after a PDV header", whole: []int{L + 10}, announce: 100, partial: 0},
		{name: "A-ABORT between PDVs in memory", whole: []int{L - 1}, abort: true},
		{name: "A-ABORT between PDVs after the spill", whole: []int{L, 1}, abort: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, addr, c, tmp := edgeServer(t, L, 0)
			cl, pcID := edgeDial(t, addr, "BROKEN")
			u := "1.2.66.1"
			c.expect(u, nil) // any call for it fails the test below
			writeRawCommand(t, cl, pcID, u)
			junk := bytes.Repeat([]byte{0xAB}, 64<<10)
			for _, n := range tc.whole {
				pdu := []byte{pduPDataTF, 0, 0, 0, 0, 0}
				binary.BigEndian.PutUint32(pdu[2:], uint32(n+6))
				pdu = binary.BigEndian.AppendUint32(pdu, uint32(n+2))
				pdu = append(pdu, pcID, 0)
				pdu = append(pdu, junk[:n]...)
				if err := cl.c.write(pdu); err != nil {
					t.Fatal(err)
				}
			}
			if tc.abort {
				if err := cl.c.write(encodeSimple(pduAbort, 0, abortSourceUser, 0)); err != nil {
					t.Fatal(err)
				}
			} else {
				pdu := []byte{pduPDataTF, 0, 0, 0, 0, 0}
				binary.BigEndian.PutUint32(pdu[2:], uint32(tc.announce+6))
				pdu = binary.BigEndian.AppendUint32(pdu, uint32(tc.announce+2))
				pdu = append(pdu, pcID, 2)
				pdu = append(pdu, junk[:tc.partial]...)
				if err := cl.c.write(pdu); err != nil {
					t.Fatal(err)
				}
			}
			cl.c.close()

			// A good association afterwards, with smaller data sets than
			// the broken one left in the pooled buffer.
			cl2, pc2 := edgeDial(t, addr, "GOOD")
			for i, n := range []int{10, 1, L, 0, L + 1, 2} {
				u := fmt.Sprintf("1.2.67.%d", i)
				ds := pattern(i+7, n)
				c.expect(u, ds)
				if st := rawStore(t, cl2, pc2, u, ds, [][]int{{n}}); st != 0 {
					t.Errorf("%d bytes after a broken association: 0x%04X", n, st)
				}
			}
			cl2.Release(context.Background())
			waitIdle(t, s)
			for _, got := range c.stored() {
				if got == u {
					t.Errorf("the handler got the broken data set")
				}
			}
			if got := len(c.stored()); got != 6 {
				t.Errorf("handler called %d times, want 6", got)
			}
			assertEmptyDir(t, tmp)
		})
	}
}

// TestPart10BytesHeaderSizes: Part10Bytes over a spooled buffer with file
// meta headers up to, at and beyond part10Room (UIDs longer than the 64
// characters the server accepts, as a handler test might build): always
// WritePart10's file, in place while the header fits, by a copy (leaving
// the spooled buffer's data set untouched) when it does not.
func TestPart10BytesHeaderSizes(t *testing.T) {
	ds := pattern(5, 301)
	sizes := map[int]bool{}
	for n := 1; n < 1100; n++ {
		cls := "1." + strings.Repeat("2", n)
		meta := FileMeta{MediaStorageSOPClassUID: cls, MediaStorageSOPInstanceUID: "1.2.3", TransferSyntaxUID: ExplicitVRLittleEndian, SourceApplicationEntityTitle: "AE"}
		head, err := AppendPart10Header(nil, meta)
		if err != nil {
			t.Fatal(err)
		}
		sizes[len(head)] = true
		sp := &spool{limit: 1 << 20}
		if _, err := sp.Write(ds); err != nil {
			t.Fatal(err)
		}
		req := &StoreRequest{SOPClassUID: cls, SOPInstanceUID: "1.2.3", TransferSyntaxUID: ExplicitVRLittleEndian, CallingAETitle: "AE",
			DataSet: sp.data(), DataSetSize: int64(len(ds)), spooled: sp.buf}
		got, ok, err := req.Part10Bytes()
		if err != nil || !ok {
			t.Fatalf("header %d: ok %v, %v", len(head), ok, err)
		}
		if !bytes.Equal(got, append(head, ds...)) {
			t.Fatalf("header of %d bytes: Part10Bytes differs from header+data set", len(head))
		}
		inPlace := &got[len(head)] == &req.DataSet[0]
		if inPlace != (len(head) <= part10Room) {
			t.Errorf("header of %d bytes: in place %v", len(head), inPlace)
		}
		if !bytes.Equal(req.DataSet, ds) {
			t.Fatalf("header of %d bytes: the data set was overwritten", len(head))
		}
		sp.release()
	}
	if !sizes[part10Room] || !sizes[part10Room+2] {
		t.Errorf("header sizes tried do not include %d and %d", part10Room, part10Room+2)
	}
}

// TestSpoolPooledBufferReuse: spools taking pooled buffers one after
// another with shrinking and growing sizes hold exactly what was written
// to them, with the full room in front, through Write and ReadFrom.
func TestSpoolPooledBufferReuse(t *testing.T) {
	for i, n := range []int{5000, 10, 0, 4096, 1, 3000, 70000, 2} {
		ds := pattern(i, n)
		sp := &spool{limit: 1 << 20, dir: t.TempDir()}
		// Half through ReadFrom (a LimitedReader, as io.CopyN passes), half
		// through Write.
		h := n / 2
		if m, err := io.CopyN(sp, bytes.NewReader(ds[:h]), int64(h)); err != nil || m != int64(h) {
			t.Fatalf("CopyN: %d, %v", m, err)
		}
		if _, err := sp.Write(ds[h:]); err != nil {
			t.Fatal(err)
		}
		if n > 0 && (len(sp.buf) != part10Room+n || !bytes.Equal(sp.data(), ds)) {
			t.Fatalf("size %d: spool holds %d bytes after %d of room", n, len(sp.data()), len(sp.buf)-len(sp.data()))
		}
		if n == 0 && len(sp.data()) != 0 {
			t.Fatalf("empty data set: %d bytes", len(sp.data()))
		}
		sp.release()
	}
}

// TestSpoolReadFromShortSource: a connection that ends inside a PDV gives
// io.CopyN's EOF and only the bytes that arrived, in memory and across
// the limit.
func TestSpoolReadFromShortSource(t *testing.T) {
	for _, tc := range []struct{ have, announce, limit int }{{10, 100, 1000}, {0, 100, 1000}, {500, 1000, 800}, {999, 1000, 1000}} {
		sp := &spool{limit: int64(tc.limit), dir: t.TempDir()}
		ds := pattern(1, tc.have)
		n, err := io.CopyN(sp, bytes.NewReader(ds), int64(tc.announce))
		if n != int64(tc.have) || err != io.EOF {
			t.Errorf("%+v: CopyN %d, %v; want %d, EOF", tc, n, err, tc.have)
		}
		if sp.f == nil && !bytes.Equal(sp.data(), ds) {
			t.Errorf("%+v: spool holds %d bytes", tc, len(sp.data()))
		}
		if err := sp.release(); err != nil {
			t.Error(err)
		}
	}
}
