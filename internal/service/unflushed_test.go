package service

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// An instance whose blob did not survive an unclean stop (it was listed
// in blob_unflushed: committed, never acknowledged) is removed when serve
// starts, with its queued results, and recorded in the audit trail as
// instance:delete by radflow itself, after its staged instance:store
// record; the sender's retry over C-STORE stores it again.
func TestUnflushedInstanceRemovedAtStart(t *testing.T) {
	chest := sharedPath(t, chestName)
	dir := t.TempDir()
	repo := bundledRepo(t)
	s := startService(t, dir, repo, func(c *Config) { c.Workers = 0 })
	if out, err := storescu(t, s.DICOMAddr(), chest); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	// What a power loss can leave: the row committed and listed, the
	// blob's bytes never written (the zero fill is on the disk).
	ctx := context.Background()
	in, err := s.db.GetInstance(ctx, chestSOP)
	if err != nil {
		t.Fatal(err)
	}
	// Listed in a batch whose log fdatasync never returned (the clean
	// stop below keeps it).
	if _, err := s.db.WriteDB().ExecContext(ctx, `INSERT INTO blob_unflushed (batch, sop_instance_uid) VALUES (?, ?)`, int64(1)<<40, chestSOP); err != nil {
		t.Fatal(err)
	}
	stopService(t, s)
	m := regexp.MustCompile(`^packs/([0-9]{8}\.pack)@([0-9]+)\+`).FindStringSubmatch(in.BlobKey)
	if m == nil {
		t.Fatalf("blob key %q is not a pack region", in.BlobKey)
	}
	off, _ := strconv.ParseInt(m[2], 10, 64)
	f, err := os.OpenFile(filepath.Join(dir, "blobs", "packs", m[1]), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4096), off); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s = startService(t, dir, repo, func(c *Config) { c.Workers = 0 })
	if ok, err := s.db.HasInstance(ctx, chestSOP); err != nil || ok {
		t.Fatalf("instance after start: exists %v, %v", ok, err)
	}
	if rs, err := s.db.ListResults(ctx, chestSOP, ""); err != nil || len(rs) != 0 {
		t.Errorf("results after start: %+v, %v", rs, err)
	}
	var actions []string
	for _, r := range records(t, s) {
		if r.Resource.SOPInstanceUID != chestSOP {
			continue
		}
		actions = append(actions, r.Action)
		if r.Action == "instance:delete" && (r.SubjectID != "radflow" || r.Detail["reason"] != "blob_not_durable_at_unclean_stop" ||
			r.Resource.StudyInstanceUID == "" || r.Protocol != "internal") {
			t.Errorf("removal record %+v", r)
		}
	}
	if len(actions) != 2 || actions[0] != "instance:store" || actions[1] != "instance:delete" {
		t.Errorf("records of the instance: %v, want instance:store then instance:delete", actions)
	}

	if out, err := storescu(t, s.DICOMAddr(), chest); err != nil {
		t.Fatalf("storescu again: %v\n%s", err, out)
	}
	if ok, err := s.db.HasInstance(ctx, chestSOP); err != nil || !ok {
		t.Fatalf("instance after the retry: exists %v, %v", ok, err)
	}
	if rs, err := s.db.ListResults(ctx, chestSOP, ""); err != nil || len(rs) != 1 {
		t.Errorf("results after the retry: %d, %v (want 1 queued)", len(rs), err)
	}
}
