package export

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/ingest"
	"github.com/radflow/radflow/internal/store"
)

// autoConfig: "auto" (auto: [sr], internal) at a, "manual" at b, and
// "research" (auto: [sr], external) at c.
func autoConfig(t *testing.T, a, b, c string) *Config {
	t.Helper()
	cfg, err := ParseConfig(strings.NewReader(`destinations:
  - {name: auto, ae_title: GOPACS, address: "` + a + `", auto: [sr], retry: {attempts: 2, backoff: 10ms}}
  - {name: manual, ae_title: GOPACS, address: "` + b + `", retry: {attempts: 2, backoff: 10ms}}
  - name: research
    ae_title: GOPACS
    address: "` + c + `"
    external: true
    auto: [sr]
    retry: {attempts: 2, backoff: 10ms}
    deid: {project_secret_file: "` + secretFile(t) + `"}
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type fakeIngester struct{ out ingest.Outcome }

func (f fakeIngester) Ingest(_ context.Context, r io.Reader, _ ingest.SourceInfo) (ingest.Outcome, error) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return ingest.Outcome{}, err
	}
	return f.out, nil
}

func TestAutoPushResultSR(t *testing.T) {
	files := mrStudy(t)
	src := newSource(t, files...)
	sr := addResultSR(t, src, files[0])
	a, b, c := startGoSCP(t, dimse.Config{}), startGoSCP(t, dimse.Config{}), startGoSCP(t, dimse.Config{})
	aud := &recAuditor{}
	e := newExporter(t, autoConfig(t, a.addr(), b.addr(), c.addr()), src, aud)
	if got := e.AutoDestinations(); len(got) != 2 || got[0].Name != "auto" || got[1].Name != "research" {
		t.Fatalf("AutoDestinations = %+v", got)
	}
	p := NewAutoPusher(e, AutoPushOptions{Logger: quietLogger()})
	ing := AutoPushIngester{Next: fakeIngester{ingest.Outcome{SOPInstanceUID: sr.SOPInstanceUID, StudyInstanceUID: mrStudyUID, Created: true}}, Pusher: p}
	// A DIMSE-received instance is not pushed; the result SR is.
	if _, err := ing.Ingest(context.Background(), strings.NewReader("x"), ingest.SourceInfo{Source: store.SourceDIMSE}); err != nil {
		t.Fatal(err)
	}
	if _, err := ing.Ingest(context.Background(), bytes.NewReader(src.data[sr.SOPInstanceUID]), ingest.SourceInfo{Source: store.SourceResult}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := a.received(t)
	if len(got) != 1 {
		t.Fatalf("auto destination received %d instances, want the SR only", len(got))
	}
	_, ds := dataSetOf(t, src.data[sr.SOPInstanceUID])
	if r, ok := got[sr.SOPInstanceUID]; !ok || !bytes.Equal(r.ds, ds) {
		t.Fatal("auto destination did not receive the SR unchanged")
	}
	if n := len(b.received(t)); n != 0 {
		t.Fatalf("destination without auto received %d instances", n)
	}
	ext := c.received(t)
	if len(ext) != 1 {
		t.Fatalf("external auto destination received %d", len(ext))
	}
	for uid, r := range ext {
		if uid == sr.SOPInstanceUID || bytes.Contains(r.ds, []byte(mrPatientName)) || bytes.Contains(r.ds, []byte(mrPatientID)) {
			t.Fatal("the external destination received an identified SR")
		}
	}
	if len(aud.events) != 2 || !aud.events[0].Auto || !aud.events[1].Auto || aud.events[0].SOPInstanceUID != sr.SOPInstanceUID {
		t.Fatalf("audit %+v", aud.events)
	}
	if err := p.OnResult(context.Background(), sr.SOPInstanceUID, mrStudyUID); !errors.Is(err, ErrClosed) {
		t.Fatalf("OnResult after Close = %v", err)
	}
}

func TestPushResultErrors(t *testing.T) {
	files := mrStudy(t)
	src := newSource(t, files...)
	sr := addResultSR(t, src, files[0])
	port := "127.0.0.1:" + freePort(t)
	e := newExporter(t, autoConfig(t, port, port, port), src, nil)
	if _, err := e.PushResult(context.Background(), "1.2.3.4", mrStudyUID); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown SR: %v", err)
	}
	if _, err := e.PushResult(context.Background(), sr.SOPInstanceUID, "1.2.3"); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("study mismatch: %v", err)
	}
	res, err := e.PushResult(context.Background(), sr.SOPInstanceUID, mrStudyUID)
	if !errors.Is(err, ErrDestinationUnavailable) || len(res) != 2 || res[0].Destination != "auto" || res[1].Outcomes[0].Reason != ReasonNetwork {
		t.Fatalf("PushResult to a closed port = %v, %+v", err, res)
	}
}

func TestAutoPusherQueueFullAndNoDestinations(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	// No auto destination: OnResult does nothing.
	e := newExporter(t, config(t, "127.0.0.1:1", "PACS", false, ""), src, nil)
	p := NewAutoPusher(e, AutoPushOptions{})
	if err := p.OnResult(context.Background(), "1.2.3", "1.2"); err != nil {
		t.Fatal(err)
	}
	p.Close(context.Background())

	// A full queue refuses; a duplicate of a queued push is not queued twice.
	port := "127.0.0.1:" + freePort(t)
	e = newExporter(t, autoConfig(t, port, port, port), src, nil)
	p = &AutoPusher{e: e, log: quietLogger(), ch: make(chan push, 1), queued: map[push]bool{}, enabled: true}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if err := p.OnResult(context.Background(), "1.2.3", "1.2"); err != nil {
		t.Fatal(err)
	}
	if err := p.OnResult(context.Background(), "1.2.3", "1.2"); err != nil {
		t.Fatalf("duplicate: %v", err)
	}
	if err := p.OnResult(context.Background(), "1.2.4", "1.2"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("full queue: %v", err)
	}
	if len(p.ch) != 1 {
		t.Fatalf("%d queued, want 1", len(p.ch))
	}
}
