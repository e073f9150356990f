package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// packObj is one object writePack put into a pack file.
type packObj struct {
	off   int64
	plain []byte
	size  int64 // encoded length
}

// testPackRel is the pack file writePack writes, relative to the blob root.
const testPackRel = "packs/00000001.pack"

// writePack writes <dir>/blobs/packs/00000001.pack: objects of 0, 1, 70000
// and 300000 plaintext bytes encoded with c at offsets 0, 4096, 966656 and
// 1048576 (the last one at the start of the scan's second 1 MiB read,
// the third's body ending just before it), zeros between them except
// 13288 random bytes (stale ciphertext) from 8192 on, between the second
// and the third object. The file ends with the last object.
func writePack(t *testing.T, dir string, c *Codec) (string, []packObj) {
	t.Helper()
	offs := []int64{0, 4096, 966656, 1048576}
	sizes := []int{0, 1, 70000, 300000}
	var pack []byte
	var objs []packObj
	for i, n := range sizes {
		plain := make([]byte, n)
		rand.Read(plain)
		enc := encode(t, c, plain, 3)
		if len(enc) != EncodedSize(n) {
			t.Fatalf("encoded %d bytes, want %d", len(enc), EncodedSize(n))
		}
		pack = append(pack, make([]byte, int(offs[i])-len(pack))...)
		if i == 2 {
			garbage := make([]byte, 3*packAlign+1000)
			rand.Read(garbage)
			copy(pack[2*packAlign:], garbage)
		}
		pack = append(pack, enc...)
		objs = append(objs, packObj{offs[i], plain, int64(len(enc))})
	}
	p := filepath.Join(BlobDir(dir), filepath.FromSlash(testPackRel))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, pack, 0o640); err != nil {
		t.Fatal(err)
	}
	return p, objs
}

// checkPack decodes every object of the pack at p through a section
// reader at its offset and compares it with its plaintext; each header
// must name kekID.
func checkPack(t *testing.T, c *Codec, p string, objs []packObj, kekID string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, o := range objs {
		var hb [HeaderSize]byte
		if _, err := f.ReadAt(hb[:], o.off); err != nil {
			t.Fatal(err)
		}
		if id, err := KEKID(hb[:]); err != nil || id != kekID {
			t.Errorf("object @%d: header names %q (%v), want %q", o.off, id, err, kekID)
		}
		r, err := c.Decode(io.NewSectionReader(f, o.off, o.size))
		if err != nil {
			t.Fatalf("object @%d: %v", o.off, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, o.plain) {
			t.Fatalf("object @%d: decoded %d bytes (%v), want %d", o.off, len(got), err, len(o.plain))
		}
	}
}

// withoutHeaders returns b with the header bytes of objs zeroed: what a
// rewrap must leave unchanged.
func withoutHeaders(b []byte, objs []packObj) []byte {
	b = bytes.Clone(b)
	for _, o := range objs {
		clear(b[o.off : o.off+HeaderSize])
	}
	return b
}

// TestWalkPackObjects: walkObjects reports each object of a pack with its
// offset and "packs/NAME.pack@OFFSET", in file order, and never the pack
// itself; an empty pack reports nothing; a damaged or cut-short header in
// a pack is ErrIntegrity (never ErrNotEncrypted), and Inventory fails on
// it naming the object.
func TestWalkPackObjects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ring := testRing(t)
	p, objs := writePack(t, dir, NewCodec(ring))
	os.WriteFile(filepath.Join(filepath.Dir(p), "00000002.pack"), nil, 0o640)
	type seen struct {
		rel, path string
		off       int64
		kek       string
	}
	var got []seen
	err := walkObjects(ctx, BlobDir(dir), func(rel, path string, off int64, h *header, herr error) error {
		if herr != nil {
			t.Fatalf("%s: %v", rel, herr)
		}
		got = append(got, seen{rel, path, off, h.kekID})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{testPackRel + "@0", p, 0, ring.Active()},
		{testPackRel + "@4096", p, 4096, ring.Active()},
		{testPackRel + "@966656", p, 966656, ring.Active()},
		{testPackRel + "@1048576", p, 1048576, ring.Active()},
	}
	if len(got) != len(want) {
		t.Fatalf("walk reported %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("object %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if rel, off, pack := splitObjectRel(testPackRel + "@966656"); rel != testPackRel || off != objs[2].off || !pack {
		t.Errorf("splitObjectRel: %s %d %v", rel, off, pack)
	}
	for _, plain := range []string{"20240101/0000/a@4096.dcm", "packs/x.dat@4096", testPackRel + "@12", testPackRel + "@-4096", testPackRel} {
		if rel, off, pack := splitObjectRel(plain); rel != plain || off != 0 || pack {
			t.Errorf("splitObjectRel(%q): %s %d %v", plain, rel, off, pack)
		}
	}

	// Damaged and cut-short headers.
	bad := make([]byte, 2*packAlign+20)
	copy(bad, encode(t, NewCodec(ring), []byte("x"), 1))
	copy(bad[packAlign:], magic[:])
	bad[packAlign+offVersion] = 9
	copy(bad[2*packAlign:], magic[:])
	os.WriteFile(filepath.Join(filepath.Dir(p), "00000003.pack"), bad, 0o640)
	errs := map[string]error{}
	err = walkObjects(ctx, BlobDir(dir), func(rel, _ string, _ int64, _ *header, herr error) error {
		if strings.HasPrefix(rel, "packs/00000003.pack") {
			errs[rel] = herr
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 3 || errs["packs/00000003.pack@0"] != nil ||
		!errors.Is(errs["packs/00000003.pack@4096"], ErrIntegrity) || !errors.Is(errs["packs/00000003.pack@8192"], ErrIntegrity) {
		t.Fatalf("damaged pack: %v", errs)
	}
	if _, err := Inventory(ctx, dir); !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "packs/00000003.pack@4096") {
		t.Fatalf("inventory over a damaged pack object: %v", err)
	}
}

// TestPackRewrapRetire: Inventory counts pack objects per KEK; Retire of
// a KEK that only pack objects still use is refused; Rewrap (and Rotate)
// move every pack object to the new KEK, rewriting only the headers, and
// each object still decodes; Retire is then allowed.
func TestPackRewrapRetire(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k, err := Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ring := k.Ring
	k1 := ring.Active()
	p, objs := writePack(t, dir, k.Codec())
	st, err := Inventory(ctx, dir)
	if err != nil || st.Objects != 4 || st.Plaintext != 0 || st.ByKEK[k1] != 5 || len(st.ByKEK) != 1 {
		t.Fatalf("inventory: %+v %v", st, err)
	}

	// A new active KEK; the PHI key and an ordinary blob under it, so
	// that only the pack's objects still use k1.
	k2 := NewKEK()
	if err := ring.Add(k2, true); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyringFile(KeyringPath(dir), ring); err != nil {
		t.Fatal(err)
	}
	if _, err := rewrapPHIKey(PHIKeyPath(dir), ring); err != nil {
		t.Fatal(err)
	}
	blobs := writeObjects(t, dir, NewCodec(ring), 1)
	os.WriteFile(filepath.Join(BlobDir(dir), "a", "plain.dcm"), []byte("not encrypted"), 0o640)
	st, err = Inventory(ctx, dir)
	if err != nil || st.Objects != 5 || st.Plaintext != 1 || st.ByKEK[k1] != 4 || st.ByKEK[k2.ID] != 2 {
		t.Fatalf("inventory: %+v %v", st, err)
	}
	if err := Retire(ctx, dir, KeyringPath(dir), k1); !errors.Is(err, ErrKEKInUse) || !strings.Contains(err.Error(), "wraps 4 objects") {
		t.Fatalf("retiring a KEK that wraps pack objects: %v, want ErrKEKInUse", err)
	}
	if r, _, _ := LoadKeyring(LoadOptions{DataDir: dir}); len(r.IDs()) != 2 {
		t.Fatalf("keyring after a refused retire: %v", r.IDs())
	}

	before, _ := os.ReadFile(p)
	st, err = Rewrap(ctx, dir, ring, nil)
	if err != nil || st.Objects != 5 || st.Rewrapped != 4 || st.Plaintext != 1 || st.ByKEK[k2.ID] != 6 || st.ByKEK[k1] != 0 {
		t.Fatalf("rewrap: %+v %v", st, err)
	}
	after, _ := os.ReadFile(p)
	if len(after) != len(before) || !bytes.Equal(withoutHeaders(after, objs), withoutHeaders(before, objs)) {
		t.Fatal("rewrap changed pack bytes outside the object headers")
	}
	if _, err := os.Stat(JournalPath(dir)); !os.IsNotExist(err) {
		t.Fatal("journal left behind")
	}
	only2, _ := NewKeyring(k2)
	checkPack(t, NewCodec(only2), p, objs, k2.ID)
	if err := Retire(ctx, dir, KeyringPath(dir), k1); err != nil {
		t.Fatalf("retire after rewrap: %v", err)
	}
	if r, _, _ := LoadKeyring(LoadOptions{DataDir: dir}); len(r.IDs()) != 1 || r.Active() != k2.ID {
		t.Fatalf("keyring after retire: %v", r.IDs())
	}

	// Rotate moves the pack, the blob and the PHI key to a third KEK.
	k3, st, err := Rotate(ctx, dir, KeyringPath(dir), nil)
	if err != nil || st.Objects != 5 || st.Rewrapped != 6 || st.ByKEK[k3] != 6 {
		t.Fatalf("rotate: %+v %v", st, err)
	}
	ring3, _, err := LoadKeyring(LoadOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring3.Remove(k2.ID); err != nil {
		t.Fatal(err)
	}
	checkPack(t, NewCodec(ring3), p, objs, k3)
	checkObjects(t, NewCodec(ring3), blobs)
	if st, err := Rewrap(ctx, dir, ring3, nil); err != nil || st.Rewrapped != 0 || st.ByKEK[k3] != 6 {
		t.Fatalf("second rewrap: %+v %v", st, err)
	}
}

// TestPackRecoverTornHeader: a header torn at a pack offset, journaled as
// "packs/NAME.pack@OFFSET", gets its old header back at that offset; an
// intact journaled pack object and a journaled offset without the magic
// (stale bytes) are left alone; a plain record of an ordinary blob still
// restores at offset 0.
func TestPackRecoverTornHeader(t *testing.T) {
	dir := t.TempDir()
	k, err := Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ring := k.Ring
	k1 := ring.Active()
	p, objs := writePack(t, dir, k.Codec())
	blobs := writeObjects(t, dir, k.Codec(), 1)
	orig, _ := os.ReadFile(p)
	nk := NewKEK()
	ring.Add(nk, true)
	tear := func(old []byte) []byte {
		h, err := parseHeader(old)
		if err != nil {
			t.Fatal(err)
		}
		dek, err := h.unwrap(ring)
		if err != nil {
			t.Fatal(err)
		}
		nh := &header{raw: h.raw}
		nh.wrap(nk.ID, nk.Key, dek)
		torn := bytes.Clone(old[:HeaderSize])
		copy(torn[:100], nh.raw[:100]) // first 100 bytes new, the rest old
		return torn
	}

	torn := objs[3]
	oldHdr := orig[torn.off : torn.off+HeaderSize]
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(tear(oldHdr), torn.off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := NewCodec(ring).Decode(io.NewSectionReader(mustOpen(t, p), torn.off, torn.size)); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("torn header: %v, want ErrIntegrity", err)
	}
	var blobName string
	for n := range blobs {
		blobName = n
	}
	blobOld, _ := os.ReadFile(blobName)
	os.WriteFile(blobName, append(tear(blobOld), blobOld[HeaderSize:]...), 0o640)
	blobRel, _ := filepath.Rel(BlobDir(dir), blobName)

	var j []byte
	j = append(j, journalRecord(packObjectRel(testPackRel, torn.off), oldHdr)...)
	j = append(j, journalRecord(packObjectRel(testPackRel, objs[1].off), orig[objs[1].off:objs[1].off+HeaderSize])...)
	j = append(j, journalRecord(packObjectRel(testPackRel, 2*packAlign), oldHdr)...) // stale bytes there
	j = append(j, journalRecord(filepath.ToSlash(blobRel), blobOld[:HeaderSize])...)
	rec := journalRecord(packObjectRel(testPackRel, objs[2].off), oldHdr)
	j = append(j, rec[:60]...) // torn tail
	if err := os.WriteFile(JournalPath(dir), j, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := Recover(dir, ring)
	if err != nil || n != 2 {
		t.Fatalf("recover: %d %v", n, err)
	}
	if _, err := os.Stat(JournalPath(dir)); !os.IsNotExist(err) {
		t.Fatal("journal left behind")
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, orig) {
		t.Fatal("pack differs from before the torn write")
	}
	checkPack(t, NewCodec(ring), p, objs, k1)
	checkObjects(t, NewCodec(ring), blobs)
	// Rewrap then completes under the new key.
	st, err := Rewrap(context.Background(), dir, ring, nil)
	if err != nil || st.Objects != 5 || st.Rewrapped != 6 || st.ByKEK[nk.ID] != 6 {
		t.Fatalf("rewrap: %+v %v", st, err)
	}
	checkPack(t, NewCodec(ring), p, objs, nk.ID)
}

func mustOpen(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestPackEncryptExisting: EncryptExisting counts pack objects as
// already encrypted and leaves every pack byte-identical: one full of
// objects, an empty one and one whose first block is zeros (which a
// plaintext check of the file's first bytes would take for plaintext);
// a plaintext blob beside them is encrypted; a second run is a no-op.
func TestPackEncryptExisting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k, err := Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p, objs := writePack(t, dir, k.Codec())
	empty := filepath.Join(filepath.Dir(p), "00000002.pack")
	os.WriteFile(empty, nil, 0o640)
	zeroFirst := filepath.Join(filepath.Dir(p), "00000003.pack")
	os.WriteFile(zeroFirst, append(make([]byte, packAlign), encode(t, k.Codec(), []byte("late"), 1)...), 0o640)
	packs := map[string][]byte{}
	for _, q := range []string{p, empty, zeroFirst} {
		packs[q], _ = os.ReadFile(q)
	}
	d := filepath.Join(BlobDir(dir), "20240101", "0000")
	os.MkdirAll(d, 0o750)
	plain := append(make([]byte, 128), "DICM plaintext"...)
	os.WriteFile(filepath.Join(d, "c.dcm"), plain, 0o640)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for run := range 2 {
		st, err := EncryptExisting(ctx, dir, k.Ring, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		wantEnc, wantAlready := 1, 5
		if run == 1 {
			wantEnc, wantAlready = 0, 6
		}
		if st.Encrypted != wantEnc || st.AlreadyEncrypted != wantAlready || len(st.Damaged) != 0 || len(st.Mismatched) != 0 || st.TempRemoved != 0 {
			t.Fatalf("run %d: stats %+v", run, st)
		}
		for q, b := range packs {
			if got, err := os.ReadFile(q); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("run %d: %s changed (%v)", run, filepath.Base(q), err)
			}
		}
		ents, _ := os.ReadDir(filepath.Dir(p))
		if len(ents) != 3 {
			t.Fatalf("run %d: packs/ holds %d entries, want 3", run, len(ents))
		}
	}
	checkPack(t, k.Codec(), p, objs, k.Ring.Active())
	b, _ := os.ReadFile(filepath.Join(d, "c.dcm"))
	if got, err := decode(k.Codec(), b); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("plaintext blob: %v", err)
	}
	if st, err := Inventory(ctx, dir); err != nil || st.Objects != 6 || st.Plaintext != 0 {
		t.Fatalf("inventory: %+v %v", st, err)
	}
}
