package dicomweb

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this file attack STOW-RS's body reading: a pooled 256 KiB
// bufio.Reader under mime/multipart (its own 4 KiB buffer), under
// http.MaxBytesReader.

// partRecorder is an Ingester that stores nothing but what each part's
// bytes were: a part starts with "ID:<id>;" and is recorded under id only
// when it was read to its end without error (as an Ingester that stored
// it would; the same part again is stored again, another part under the
// same ID records nil). Stored carries id as the SOP Instance UID.
type partRecorder struct {
	mu    sync.Mutex
	parts map[string][]byte
	calls int
}

func newPartRecorder() *partRecorder { return &partRecorder{parts: map[string][]byte{}} }

func (p *partRecorder) Ingest(ctx context.Context, r io.Reader, src Source) (Stored, error) {
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	b, err := io.ReadAll(r)
	if err != nil {
		return Stored{}, fmt.Errorf("%w: reading: %w", ErrInvalidInstance, err)
	}
	id, _, ok := strings.Cut(strings.TrimPrefix(string(b[:min(len(b), 64)]), "ID:"), ";")
	if !ok || !bytes.HasPrefix(b, []byte("ID:")) {
		return Stored{}, fmt.Errorf("%w: no ID", ErrInvalidInstance)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, dup := p.parts[id]; dup && !bytes.Equal(prev, b) {
		// The same ID with other bytes: keep the mismatch visible.
		p.parts[id] = nil
		return Stored{}, fmt.Errorf("%w: part %s twice with other bytes", ErrInvalidInstance, id)
	}
	p.parts[id] = b
	return Stored{SOPClassUID: "1.2.3", SOPInstanceUID: id, StudyInstanceUID: "1.2.3.4", SeriesInstanceUID: "1.2.3.4.5"}, nil
}

func (p *partRecorder) get(id string) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.parts[id]
	return b, ok
}

func (p *partRecorder) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parts)
}

const stowBoundary = "radflow-edge-boundary-7f3a"

const stowCT = `multipart/related; type="application/dicom"; boundary=` + stowBoundary

// partHead is what precedes each part's bytes in the bodies built here.
const partHead = "--" + stowBoundary + "\r\nContent-Type: application/dicom\r\n\r\n"

// bodyBuilder builds a multipart body whose parts end where asked.
type bodyBuilder struct {
	b     bytes.Buffer
	parts map[string][]byte
	rng   *rand.Rand
}

func newBody(seed uint64) *bodyBuilder {
	return &bodyBuilder{parts: map[string][]byte{}, rng: rand.New(rand.NewPCG(seed, 99))}
}

// partEndingAt appends a part whose delimiter ("\r\n--boundary") starts at
// body offset end, when there is room for one; its bytes are random,
// with an almost-delimiter ("\r\n--" and all of the boundary but its last
// character) placed to straddle the 4 KiB edge before end, and one just
// before the real delimiter, so that mime/multipart must look past read
// buffer edges to tell them apart. It returns false when end is too close.
func (bb *bodyBuilder) partEndingAt(id string, end int) bool {
	prefix := "ID:" + id + ";"
	n := end - bb.b.Len() - len(partHead)
	if n < len(prefix) {
		return false
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(bb.rng.IntN(256))
		if data[i] == '\r' || data[i] == '-' {
			data[i] = 'x' // no accidental delimiter
		}
	}
	copy(data, prefix)
	fake := []byte("\r\n--" + stowBoundary[:len(stowBoundary)-1] + "Z")
	start := bb.b.Len() + len(partHead)
	if edge := (end - 1) &^ 4095; edge-start > len(prefix)+len(fake) {
		at := edge - start - len(fake)/2
		copy(data[at:], fake)
	}
	if len(data) > len(prefix)+len(fake)+5 {
		copy(data[len(data)-len(fake)-3:], fake)
	}
	bb.b.WriteString(partHead)
	bb.b.Write(data)
	bb.parts[id] = data
	bb.b.WriteString("\r\n")
	return true
}

func (bb *bodyBuilder) close() []byte {
	bb.b.WriteString("--" + stowBoundary + "--\r\n")
	return bb.b.Bytes()
}

// chunky yields its bytes in reads of cycling sizes, so that a client
// sending it chunked writes chunks of those sizes.
type chunky struct {
	b     []byte
	sizes []int
	i     int
}

func (c *chunky) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.b), c.sizes[c.i%len(c.sizes)])
	c.i++
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

func doPost(t *testing.T, url string, body []byte, chunked bool) (int, []byte) {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = &chunky{b: body, sizes: []int{1, 4095, 4097, 7, 65536, 262143, 262145, 3}}
	}
	req, err := http.NewRequest("POST", url, r)
	if err != nil {
		t.Fatal(err)
	}
	if chunked {
		req.ContentLength = -1
	}
	req.Header.Set("Content-Type", stowCT)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("POST: %v", err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// edges are body offsets at the 4 KiB (multipart's buffer) and 256 KiB
// (the pooled read-ahead) boundaries.
var edges = []int{4096, 8192, 256 << 10, 256<<10 + 4096}

// TestStowDelimitersAcrossBufferEdges: for every shift of the delimiter
// around the 4 KiB and 256 KiB edges (from 2 bytes after the edge to past
// the delimiter's whole length before it), a body whose parts' delimiters
// all sit at that shift is received with each part's exact bytes, sent
// with Content-Length or chunked (chunks of 1 byte to 256 KiB+1), 35
// requests eight at a time (pooled readers shared between requests:
// a request seeing another's bytes would record a part under the wrong ID
// or with wrong bytes).
func TestStowDelimitersAcrossBufferEdges(t *testing.T) {
	rec := newPartRecorder()
	srv, _ := newTestServer(t, Config{Ingester: rec})
	url := srv.URL + "/dicomweb/studies"
	delim := len("\r\n--" + stowBoundary)
	type job struct {
		shift int
		body  []byte
		parts map[string][]byte
	}
	var jobs []job
	for shift := -2; shift <= delim+2; shift++ {
		bb := newBody(uint64(shift + 10))
		for k, e := range edges {
			bb.partEndingAt(fmt.Sprintf("s%d-e%d", shift, k), e-shift)
		}
		jobs = append(jobs, job{shift, bb.close(), bb.parts})
	}
	work := make(chan job)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for j := range work {
				st, b := doPost(t, url, j.body, (w+j.shift)%2 == 0)
				if st != http.StatusOK {
					t.Errorf("shift %d: status %d: %s", j.shift, st, b)
					continue
				}
				var d Dataset
				if err := json.Unmarshal(b, &d); err != nil {
					t.Errorf("shift %d: response is not DICOM JSON: %v", j.shift, err)
					continue
				}
				r := ParseStoreResponse(d)
				if len(r.Referenced) != len(j.parts) || len(r.Failed) != 0 {
					t.Errorf("shift %d: %d referenced, %d failed; want %d", j.shift, len(r.Referenced), len(r.Failed), len(j.parts))
				}
				for id, want := range j.parts {
					got, ok := rec.get(id)
					if !ok || !bytes.Equal(got, want) {
						t.Errorf("shift %d part %s: recorded %v, %d bytes, want %d", j.shift, id, ok, len(got), len(want))
					}
				}
			}
		})
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
}

// TestStowTruncatedBodies: a body cut anywhere (Content-Length matching
// the cut body, and chunked) is answered 400 — except a cut inside a
// part's headers, see below — never 500, and every part recorded is
// whole. Cuts around the 4 KiB and 256 KiB edges and inside delimiters.
func TestStowTruncatedBodies(t *testing.T) {
	rec := newPartRecorder()
	srv, _ := newTestServer(t, Config{Ingester: rec})
	url := srv.URL + "/dicomweb/studies"
	bb := newBody(7)
	bb.partEndingAt("a", 256<<10+3)
	bb.partEndingAt("b", 256<<10+20000)
	full := bb.close()
	aEnd := 256<<10 + 3 // where a's delimiter starts
	var cuts []int
	for _, e := range []int{0, 1, 4096, 8192, 256 << 10, aEnd, 256<<10 + 20000, len(full) - 10} {
		for d := -3; d <= 3; d++ {
			if c := e + d; c > 0 && c < len(full) {
				cuts = append(cuts, c)
			}
		}
	}
	for i := 1; i < len(partHead); i += 5 {
		cuts = append(cuts, aEnd+2+i) // inside b's delimiter line and headers
	}
	for _, cut := range cuts {
		for _, chunked := range []bool{false, true} {
			st, b := doPost(t, url, full[:cut], chunked)
			if st == http.StatusInternalServerError || st == 0 {
				t.Errorf("cut at %d (chunked %v): status %d %s", cut, chunked, st, b)
				continue
			}
			// Every cut is 400, also one inside the next part's headers,
			// which mime/multipart alone reads as the end of the body
			// (textproto gives io.EOF): the missing close delimiter says
			// the body was truncated (closeWatch).
			if st != http.StatusBadRequest {
				t.Errorf("cut at %d of %d (chunked %v): status %d %s", cut, len(full), chunked, st, b)
			}
		}
	}
	for _, id := range []string{"a", "b"} {
		if g, ok := rec.get(id); ok && !bytes.Equal(g, bb.parts[id]) {
			t.Errorf("part %s recorded with %d bytes, want %d", id, len(g), len(bb.parts[id]))
		}
	}
	if _, ok := rec.get("b"); ok {
		t.Errorf("part b recorded from a body cut before its end")
	}
}

// TestStowOverRequestLimit: chunked bodies over MaxRequestBytes, the limit
// falling inside the first part, at its delimiter, inside the second part,
// at the close delimiter: 413 with what was stored before (never 500, the
// part cut by the limit never recorded). With Content-Length over the
// limit: 413 before anything is read.
func TestStowOverRequestLimit(t *testing.T) {
	bb := newBody(3)
	bb.partEndingAt("first", 300_000)
	bb.partEndingAt("second", 600_000)
	full := bb.close()
	closeAt := len(full) - len("--"+stowBoundary+"--\r\n")
	for _, tc := range []struct {
		limit      int
		wantStored []string
	}{
		{1000, nil},
		{4096, nil},
		{256 << 10, nil},
		{300_000 - 1, nil},
		{300_000 + 1, nil}, // inside "first"'s delimiter
		{300_000 + 2 + len(partHead), []string{"first"}},
		{500_000, []string{"first"}},
		{closeAt - 1, []string{"first"}},
		{closeAt + 3, []string{"first"}}, // "second"'s delimiter is not whole
		{closeAt + 2 + len(stowBoundary) + 2, []string{"first", "second"}},
		{len(full) - 1, []string{"first", "second"}},
	} {
		for _, chunked := range []bool{true, false} {
			rec := newPartRecorder()
			srv, _ := newTestServer(t, Config{Ingester: rec, MaxRequestBytes: int64(tc.limit)})
			st, b := doPost(t, srv.URL+"/dicomweb/studies", full, chunked)
			if !chunked {
				if st != http.StatusRequestEntityTooLarge || rec.calls != 0 {
					t.Errorf("limit %d, Content-Length %d: status %d, %d ingests", tc.limit, len(full), st, rec.calls)
				}
				continue
			}
			if st == http.StatusRequestEntityTooLarge {
				for _, id := range tc.wantStored {
					if _, ok := rec.get(id); !ok {
						t.Errorf("limit %d: %s not stored", tc.limit, id)
					}
				}
				if rec.count() > len(tc.wantStored) {
					t.Errorf("limit %d: %d parts recorded, want %v", tc.limit, rec.count(), tc.wantStored)
				}
				continue
			}
			// The limit fell after the last delimiter: mime/multipart never
			// needs the bytes past it.
			if tc.limit < closeAt || st != http.StatusOK {
				t.Errorf("limit %d of %d (close delimiter at %d): status %d %s", tc.limit, len(full), closeAt, st, b)
			}
		}
	}
}

// TestStowClientGoneMidBody: a client that sends part of a body (and
// Content-Length for all of it) and closes the connection: the handler
// returns (no hang), nothing partial is recorded, and the server keeps
// answering other requests correctly (pooled readers).
func TestStowClientGoneMidBody(t *testing.T) {
	rec := newPartRecorder()
	fs := newFakeStore()
	svc, err := New(Config{Ingester: rec, Catalog: fs})
	if err != nil {
		t.Fatal(err)
	}
	h := svc.Handler()
	returned := make(chan int, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		returned <- sw.status
	}))
	t.Cleanup(srv.Close)
	bb := newBody(11)
	bb.partEndingAt("gone1", 100_000)
	bb.partEndingAt("gone2", 400_000)
	full := bb.close()
	for _, cut := range []int{10, 4096, 100_000 + 10, 256 << 10, 300_000} {
		nc, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(nc, "POST /dicomweb/studies HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", stowCT, len(full))
		nc.Write(full[:cut])
		nc.Close()
		select {
		case st := <-returned:
			if st == http.StatusInternalServerError || st == http.StatusOK {
				t.Errorf("cut at %d: handler answered %d", cut, st)
			}
		case <-time.After(30 * time.Second): // failsafe only
			t.Fatalf("cut at %d: the handler did not return", cut)
		}
		if _, ok := rec.get("gone2"); ok {
			t.Fatalf("cut at %d: the cut part was recorded", cut)
		}
		// A good request afterwards.
		ok := newBody(uint64(cut))
		id := "after" + strconv.Itoa(cut)
		ok.partEndingAt(id, 270_000)
		body := ok.close()
		st, b := doPost(t, srv.URL+"/dicomweb/studies", body, false)
		<-returned
		if got, _ := rec.get(id); st != http.StatusOK || !bytes.Equal(got, ok.parts[id]) {
			t.Errorf("request after a cut at %d: %d %s", cut, st, b)
		}
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// TestCloseWatch: the close delimiter is seen however the reads split it
// (one byte at a time, across two reads, inside one), and not seen in a
// body that lacks it, even with a delimiter line that is not the close
// one or a close delimiter cut short.
func TestCloseWatch(t *testing.T) {
	const bnd = "b0undary"
	for _, tc := range []struct {
		body string
		want bool
	}{
		{"--" + bnd + "\r\nContent-Type: application/dicom\r\n\r\nxx\r\n--" + bnd + "--\r\n", true},
		{"--" + bnd + "\r\n\r\nxx\r\n--" + bnd + "--", true},
		{"--" + bnd + "\r\n\r\nxx\r\n--" + bnd + "--\r\nepilogue", true},
		{"--" + bnd + "\r\n\r\nxx\r\n--" + bnd + "\r\nContent-Ty", false},
		{"--" + bnd + "\r\n\r\nxx\r\n--" + bnd + "-", false},
		{"--" + bnd + "--", false}, // no CRLF before: not a close delimiter after a part
	} {
		for _, split := range []int{1, 2, 3, 7, len(tc.body)} {
			c := &closeWatch{r: &chunkReader{b: []byte(tc.body), n: split}, delim: []byte("\r\n--" + bnd + "--")}
			got, err := io.ReadAll(c)
			if err != nil || string(got) != tc.body {
				t.Fatalf("read %q, %v", got, err)
			}
			if c.seen != tc.want {
				t.Errorf("body %q read %d bytes at a time: seen %v, want %v", tc.body, split, c.seen, tc.want)
			}
		}
	}
}

// chunkReader yields b at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}
