package dimse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/tlsconfig"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// idleConns opens n raw TCP connections to addr that never send a PDU; they
// are closed at cleanup.
func idleConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for range n {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(conns), err)
		}
		conns = append(conns, nc)
	}
	t.Cleanup(func() {
		for _, nc := range conns {
			nc.Close()
		}
	})
	return conns
}

// waitPending waits until the server has accepted want connections that
// hold no association (they are in its pending table).
func waitPending(t *testing.T, s *Server, want int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		s.mu.Lock()
		n := s.pending.Len()
		s.mu.Unlock()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pending connections, want %d", n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echoOnce associates, echoes and releases; the whole exchange must finish
// well inside the ARTIM timeout the idle connections are held for.
func echoOnce(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, addr, ClientConfig{CallingAETitle: "GOSCU"}, echoCtx)
	if err != nil {
		t.Fatalf("Dial with idle connections open: %v", err)
	}
	if err := cl.Echo(ctx); err != nil {
		t.Fatalf("C-ECHO with idle connections open: %v", err)
	}
	if err := cl.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
}

// TestIdleConnectionsDoNotBlockAssociations: TCP connections that never
// send an A-ASSOCIATE-RQ hold no association slot. 40 of them against the
// default limits (16 associations) leave a C-ECHO working; beyond
// MaxPendingConnections a new connection evicts the oldest idle one, so an
// SCU still gets through and the oldest idle connection is closed long
// before its ARTIM timeout.
func TestIdleConnectionsDoNotBlockAssociations(t *testing.T) {
	t.Run("default limits, 40 idle", func(t *testing.T) {
		s, addr := startServer(t, Config{AssociationTimeout: time.Minute}, &recorder{})
		idleConns(t, addr, 40)
		waitPending(t, s, 40)
		echoOnce(t, addr)
		echoOnce(t, addr) // the released association gave its slot back
	})
	t.Run("TLS, idle before the handshake", func(t *testing.T) {
		_, srvTLS, cliTLS := devTLS(t, tlsconfig.ClientAuthNone, false)
		logs := &syncBuffer{}
		s, addr := startServer(t, Config{
			TLSConfig: srvTLS, AssociationTimeout: time.Minute, MaxPendingConnections: 4,
			Logger: slog.New(slog.NewTextHandler(logs, nil)),
		}, &recorder{})
		idleConns(t, addr, 12)
		waitPending(t, s, 4)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cl, err := Dial(ctx, addr, ClientConfig{TLSConfig: cliTLS}, echoCtx)
		if err != nil {
			t.Fatalf("Dial over TLS with idle connections open: %v", err)
		}
		if err := cl.Echo(ctx); err != nil {
			t.Fatal(err)
		}
		cl.Release(ctx)
		// Evictions are counted in the rate-limited warning, not logged
		// one handshake failure at a time.
		if out := logs.String(); strings.Contains(out, "TLS handshake failed") || !strings.Contains(out, "pre-association connection limit") {
			t.Fatalf("log:\n%s", out)
		}
	})
	t.Run("shutdown closes idle connections", func(t *testing.T) {
		s, addr := startServer(t, Config{AssociationTimeout: time.Minute}, &recorder{})
		idle := idleConns(t, addr, 5)
		waitPending(t, s, 5)
		// They hold no association: Shutdown has nothing to wait for and
		// must not run into its deadline (which would be DeadlineExceeded).
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown with idle connections: %v", err)
		}
		idle[0].SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := idle[0].Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("idle connection after Shutdown: read = %d, %v; want EOF", n, err)
		}
	})
	t.Run("beyond the pending cap", func(t *testing.T) {
		logs := &syncBuffer{}
		const maxPending = 8
		s, addr := startServer(t, Config{
			AssociationTimeout: time.Minute, MaxAssociations: 1, MaxPendingConnections: maxPending,
			Logger: slog.New(slog.NewTextHandler(logs, nil)),
		}, &recorder{})
		s.mu.Lock()
		s.shedEvery = 100 * time.Millisecond // the rate limit of the eviction warning
		s.mu.Unlock()
		idle := idleConns(t, addr, 3*maxPending)
		waitPending(t, s, maxPending)
		echoOnce(t, addr)
		// The first idle connections were evicted: EOF now, not after ARTIM.
		idle[0].SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := idle[0].Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("oldest idle connection: read = %d, %v; want EOF (evicted)", n, err)
		}
		// The newest idle connection is still held, waiting for its RQ.
		idle[len(idle)-1].SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := idle[len(idle)-1].Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("newest idle connection: read err %v, want still open", err)
		}
		// The SCU's connection took one idle one's place and, released and
		// closed, left: the other maxPending-1 idle ones are still held.
		waitPending(t, s, maxPending-1)
		// Every eviction is counted in the rate-limited warnings: the
		// 2*maxPending idle connections beyond the cap and the one the SCU
		// displaced, the first reported at once and the rest by the timer.
		const want = 2*maxPending + 1
		for deadline := time.Now().Add(10 * time.Second); ; {
			out := logs.String()
			got, lines := 0, 0
			for _, m := range regexp.MustCompile(`level=WARN msg="dimse: pre-association connection limit reached; closed idle connections" closed=(\d+) max_pending_connections=8`).FindAllStringSubmatch(out, -1) {
				n, _ := strconv.Atoi(m[1])
				got += n
				lines++
			}
			if got == want && lines >= 2 {
				break
			}
			if got > want || time.Now().After(deadline) {
				t.Fatalf("warnings count %d evictions in %d lines, want %d:\n%s", got, lines, want, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestAssociationLimitRejects: with MaxAssociations established, the next
// A-ASSOCIATE-RQ gets A-ASSOCIATE-RJ rejected-transient, service-provider
// (presentation), local limit exceeded (2/3/2), not an abort or a closed
// transport; idle pre-association connections do not count; the refusal
// is logged as a warning; a freed slot is usable again.
func TestAssociationLimitRejects(t *testing.T) {
	logs := &syncBuffer{}
	s, addr := startServer(t, Config{MaxAssociations: 2, Logger: slog.New(slog.NewTextHandler(logs, nil))}, &recorder{})
	idleConns(t, addr, 10)
	waitPending(t, s, 10)
	a := dial(t, addr, ClientConfig{CallingAETitle: "FIRST"}, echoCtx)
	b := dial(t, addr, ClientConfig{CallingAETitle: "SECOND"}, echoCtx)
	_, err := Dial(context.Background(), addr, ClientConfig{CallingAETitle: "THIRD"}, echoCtx)
	var rj *RejectError
	if !errors.As(err, &rj) || *rj != (RejectError{Result: rjTransient, Source: rjSourceProviderPres, Reason: rjReasonLocalLimitExceeded}) {
		t.Fatalf("third association: %v, want A-ASSOCIATE-RJ 2/3/2", err)
	}
	if !strings.Contains(err.Error(), "local limit exceeded") {
		t.Fatalf("reject error text %q", err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "association limit reached") || !strings.Contains(out, "max_associations=2") {
		t.Fatalf("refusal not logged:\n%s", out)
	}
	// The established ones still work; releasing one frees a slot.
	if err := b.Echo(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	echoOnce(t, addr)
	if err := b.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestDcmtkEchoscuWithIdleConnections is the reported attack with dcmtk's
// echoscu as the SCU: 40 idle connections, then echoscu must succeed; with
// the association table full it must report the rejection.
func TestDcmtkEchoscuWithIdleConnections(t *testing.T) {
	s, addr := startServer(t, Config{AssociationTimeout: time.Minute, MaxAssociations: 1}, &recorder{})
	h, p := hostPort(t, addr)
	idleConns(t, addr, 40)
	waitPending(t, s, 40)
	if out, err := dcmtk(t, "echoscu", "-aet", "DCMTK", "-aec", "RADFLOW", h, p); err != nil {
		t.Fatalf("echoscu with 40 idle connections: %v\n%s", err, out)
	}
	cl := dial(t, addr, ClientConfig{}, echoCtx) // fills the table
	defer cl.Release(context.Background())
	out, err := dcmtk(t, "echoscu", "-aet", "DCMTK", "-aec", "RADFLOW", h, p)
	if err == nil || !strings.Contains(out, "Association Rejected") || !strings.Contains(strings.ToLower(out), "local limit exceeded") {
		t.Fatalf("echoscu with a full association table: %v\n%s", err, out)
	}
}

// TestARTIMDefault: the first PDU must arrive within 10 s by default.
func TestARTIMDefault(t *testing.T) {
	s, err := NewServer(Config{}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.AssociationTimeout != 10*time.Second || s.cfg.MaxPendingConnections != 64 {
		t.Fatalf("defaults: ARTIM %v, MaxPendingConnections %d; want 10s, 64", s.cfg.AssociationTimeout, s.cfg.MaxPendingConnections)
	}
	s, _ = NewServer(Config{MaxAssociations: 100}, &recorder{})
	if s.cfg.MaxPendingConnections != 400 {
		t.Fatalf("MaxPendingConnections %d for 100 associations, want 400", s.cfg.MaxPendingConnections)
	}
}
