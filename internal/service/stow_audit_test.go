package service

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
)

// syncBuffer is a bytes.Buffer for concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// requestRecords waits until the request-level STOW-RS record of reqID
// (detail operation "stow") is in the trail and returns every record of
// that request.
func requestRecords(t *testing.T, s *Service, reqID string) []audit.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var out []audit.Record
		done := false
		for _, r := range records(t, s) {
			if r.RequestID == reqID {
				out = append(out, r)
				done = done || r.Detail["operation"] == "stow"
			}
		}
		if done {
			// An instance's record was staged with its row and joined the
			// chain after the request's: event order is time order.
			slices.SortStableFunc(out, func(a, b audit.Record) int { return a.Time.Compare(b.Time) })
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s: no request-level record after 15 s; its records: %+v", reqID, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSTOWAbortedUploadAudit reproduces an aborted STOW-RS upload over a
// real socket: the client announces Content-Length 2000000, sends part of
// the body and hangs up. The trail must say so (one request record,
// outcome error, error_kind aborted, 0 instances stored; an instance
// record only as error), never "success", and no record may be lost to
// the cancelled request context. A complete upload is then recorded as
// success with its instance.
func TestSTOWAbortedUploadAudit(t *testing.T) {
	ct := readShared(t, ctName)
	var logs syncBuffer
	s := startNoWorkers(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	tech := newToken(t, s, "hospital-a", auth.RoleTechnologist)
	body, ctype := stowBody(ct)
	header := strings.Index(string(body), "\r\n\r\n") + 4 // the first part's header ends here

	for _, cut := range []int{50, header + 300} { // in the part header; in the DICOM data
		reqID := fmt.Sprintf("abort-%d", cut)
		conn, err := net.Dial("tcp", s.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /dicomweb/studies HTTP/1.1\r\nHost: radflow\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\n"+
			"Accept: application/dicom+json\r\nX-Request-ID: %s\r\nContent-Length: 2000000\r\n\r\n", tech, ctype, reqID)
		if _, err := conn.Write(body[:cut]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // the server is now reading the body
		conn.Close()                       // the client gives up

		rs := requestRecords(t, s, reqID)
		var req []audit.Record
		for _, r := range rs {
			if r.Outcome == audit.OutcomeSuccess {
				t.Errorf("cut at %d: a success record for an upload that broke off: %+v", cut, r)
			}
			if r.Action != "instance:store" {
				t.Errorf("cut at %d: unexpected record %+v", cut, r)
			}
			switch r.Detail["operation"] {
			case "stow":
				req = append(req, r)
			case "stow-instance":
				if r.Outcome != audit.OutcomeError || r.Detail["error_kind"] != "store_failed" {
					t.Errorf("cut at %d: instance record %+v", cut, r)
				}
			}
		}
		if len(req) != 1 {
			t.Fatalf("cut at %d: %d request records, want 1: %+v", cut, len(req), rs)
		}
		r := req[0]
		if r.Outcome != audit.OutcomeError || r.Detail["error_kind"] != "aborted" || r.Detail["instances"] != "0" ||
			r.Organisation != "hospital-a" || r.PolicyDecisionID == "" || r.Detail["route"] != "POST /dicomweb/studies" {
			t.Errorf("cut at %d: request record %+v", cut, r)
		}
		if cut > header && len(rs) != 2 {
			t.Errorf("cut in the data: %d records, want the request's and the failed instance's: %+v", len(rs), rs)
		}
	}
	if strings.Contains(logs.String(), "audit record failed") || strings.Contains(logs.String(), "context canceled") {
		t.Errorf("a record was lost to the cancelled request:\n%s", logs.String())
	}
	if rows, blobs := counts(t, s); rows != 0 || blobs != 0 {
		t.Fatalf("aborted uploads stored %d rows, %d blobs", rows, blobs)
	}

	// A complete upload: the instance's record and then the request's,
	// both success.
	code, _, _ := do(t, "POST", base(s)+"/dicomweb/studies", tech, body,
		map[string]string{"Content-Type": ctype, "Accept": "application/dicom+json", "X-Request-ID": "complete-1"})
	if code != 200 {
		t.Fatalf("complete STOW: %d", code)
	}
	rs := requestRecords(t, s, "complete-1")
	if len(rs) != 2 || rs[0].Detail["operation"] != "stow-instance" || rs[0].Outcome != audit.OutcomeSuccess || rs[0].Resource.SOPInstanceUID != ctSOP || rs[0].ClientAddress != rs[1].ClientAddress ||
		rs[1].Detail["operation"] != "stow" || rs[1].Outcome != audit.OutcomeSuccess || rs[1].Detail["instances"] != "1" ||
		rs[1].Detail["http_status"] != "200" || rs[1].PolicyDecisionID != rs[0].PolicyDecisionID {
		t.Fatalf("complete STOW records: %+v", rs)
	}
}
