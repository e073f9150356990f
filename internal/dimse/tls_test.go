package dimse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/tlsconfig"
)

// devTLS writes development certificates into a temp dir and returns the
// files with a server config (clientAuth) and a client config (with the
// client certificate when withCert).
func devTLS(t *testing.T, clientAuth tlsconfig.ClientAuth, withCert bool) (tlsconfig.DevFiles, *tls.Config, *tls.Config) {
	t.Helper()
	files, err := tlsconfig.GenerateDev(t.TempDir(), tlsconfig.DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsconfig.Server(tlsconfig.ServerOptions{CertFile: files.ServerCert, KeyFile: files.ServerKey, ClientCAFile: files.CACert, ClientAuth: clientAuth})
	if err != nil {
		t.Fatal(err)
	}
	co := tlsconfig.ClientOptions{CAFile: files.CACert}
	if withCert {
		co.CertFile, co.KeyFile = files.ClientCert, files.ClientKey
	}
	cli, err := tlsconfig.Client(co)
	if err != nil {
		t.Fatal(err)
	}
	return files, srv, cli
}

// peerRecorder records each store's data set digest and peer certificate CN.
type peerRecorder struct {
	mu   sync.Mutex
	sums [][32]byte
	cns  []string
}

func (p *peerRecorder) Store(ctx context.Context, req *StoreRequest) (uint16, error) {
	f, err := req.OpenDataSet() // in memory or in a temp file
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return 0, err
	}
	cn := "<none>"
	if req.PeerCertificate != nil {
		cn = req.PeerCertificate.Subject.CommonName
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sums = append(p.sums, sha256.Sum256(b))
	p.cns = append(p.cns, cn)
	return StatusSuccess, nil
}

func (p *peerRecorder) snapshot() ([][32]byte, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][32]byte(nil), p.sums...), append([]string(nil), p.cns...)
}

var ctPC = []PresentationContext{{AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{ExplicitVRLittleEndian}}, {AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}

// testDataSet is 600 KiB of patterned bytes: several PDUs, content checked by digest.
func testDataSet() []byte {
	b := make([]byte, 600<<10)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

func TestTLSGoSCUToGoSCP(t *testing.T) {
	_, srvTLS, cliTLS := devTLS(t, tlsconfig.ClientAuthNone, false)
	rec := &peerRecorder{}
	_, addr := startServer(t, Config{TLSConfig: srvTLS}, rec)
	ctx := context.Background()
	cl, err := Dial(ctx, addr, ClientConfig{CalledAETitle: "RADFLOW", TLSConfig: cliTLS}, ctPC)
	if err != nil {
		t.Fatalf("Dial over TLS: %v", err)
	}
	if err := cl.Echo(ctx); err != nil {
		t.Fatalf("C-ECHO over TLS: %v", err)
	}
	ds := testDataSet()
	st, err := cl.Store(ctx, "1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.8.498.1", ExplicitVRLittleEndian, bytes.NewReader(ds), int64(len(ds)))
	if err != nil || st != StatusSuccess {
		t.Fatalf("C-STORE over TLS: status 0x%04X, %v", st, err)
	}
	if err := cl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	sums, cns := rec.snapshot()
	if len(sums) != 1 || sums[0] != sha256.Sum256(ds) {
		t.Fatalf("received %d data sets, want 1 identical to the %d bytes sent", len(sums), len(ds))
	}
	if cns[0] != "<none>" {
		t.Errorf("PeerCertificate without client auth: %q, want none", cns[0])
	}
}

func TestTLSServerRefusesPlainAndUntrusted(t *testing.T) {
	files, srvTLS, _ := devTLS(t, tlsconfig.ClientAuthNone, false)
	rec := &peerRecorder{}
	_, addr := startServer(t, Config{TLSConfig: srvTLS, AssociationTimeout: 2 * time.Second}, rec)
	ctx := context.Background()
	// Plain DICOM to a TLS port: the A-ASSOCIATE-RQ is not a ClientHello.
	if cl, err := Dial(ctx, addr, ClientConfig{AssociationTimeout: 3 * time.Second}, ctPC); err == nil {
		cl.Abort()
		t.Fatal("plain TCP association to the TLS SCP succeeded")
	}
	// A client that does not trust the dev CA refuses the server.
	other, err := tlsconfig.GenerateDev(t.TempDir(), tlsconfig.DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := tlsconfig.Client(tlsconfig.ClientOptions{CAFile: other.CACert})
	if err != nil {
		t.Fatal(err)
	}
	var uae x509.UnknownAuthorityError
	if _, err := Dial(ctx, addr, ClientConfig{TLSConfig: cli}, ctPC); !errors.As(err, &uae) {
		t.Fatalf("Dial trusting another CA: %v, want x509.UnknownAuthorityError", err)
	}
	// The server certificate has no SAN for another host name.
	cli, _ = tlsconfig.Client(tlsconfig.ClientOptions{CAFile: files.CACert, ServerName: "pacs.example"})
	var hne x509.HostnameError
	if _, err := Dial(ctx, addr, ClientConfig{TLSConfig: cli}, ctPC); !errors.As(err, &hne) {
		t.Fatalf("Dial with a wrong server name: %v, want x509.HostnameError", err)
	}
	if sums, _ := rec.snapshot(); len(sums) != 0 {
		t.Fatalf("%d stores reached the handler", len(sums))
	}
}

func TestMutualTLS(t *testing.T) {
	files, srvTLS, cliTLS := devTLS(t, tlsconfig.ClientAuthRequire, true)
	rec := &peerRecorder{}
	var infos []AssociationInfo
	var mu sync.Mutex
	cfg := Config{TLSConfig: srvTLS, AssociationTimeout: 2 * time.Second, AcceptAssociation: func(ai AssociationInfo) error {
		mu.Lock()
		infos = append(infos, ai)
		mu.Unlock()
		if ai.PeerCertificate == nil || ai.PeerCertificate.Subject.CommonName != "radflow-dev-client" {
			return errors.New("unknown certificate")
		}
		return nil
	}}
	_, addr := startServer(t, cfg, rec)
	ctx := context.Background()

	// Without a client certificate the handshake is refused (TLS 1.3: the
	// refusal arrives as an alert on the first read, so Dial fails then).
	noCert, err := tlsconfig.Client(tlsconfig.ClientOptions{CAFile: files.CACert})
	if err != nil {
		t.Fatal(err)
	}
	if cl, err := Dial(ctx, addr, ClientConfig{TLSConfig: noCert, AssociationTimeout: 3 * time.Second}, ctPC); err == nil {
		cl.Abort()
		t.Fatal("association without a client certificate succeeded under mutual TLS")
	}

	cl, err := Dial(ctx, addr, ClientConfig{CallingAETitle: "MODALITY1", TLSConfig: cliTLS}, ctPC)
	if err != nil {
		t.Fatalf("Dial with the client certificate: %v", err)
	}
	ds := testDataSet()[:1000]
	if st, err := cl.Store(ctx, "1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.8.498.2", ExplicitVRLittleEndian, bytes.NewReader(ds), int64(len(ds))); err != nil || st != StatusSuccess {
		t.Fatalf("C-STORE: 0x%04X %v", st, err)
	}
	cl.Release(ctx)
	sums, cns := rec.snapshot()
	if len(sums) != 1 || sums[0] != sha256.Sum256(ds) || cns[0] != "radflow-dev-client" {
		t.Fatalf("stores %d, peer CNs %v; want 1 store from radflow-dev-client", len(sums), cns)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(infos) != 1 || infos[0].CallingAETitle != "MODALITY1" || infos[0].CalledAETitle != "ANY-SCP" {
		t.Fatalf("AcceptAssociation saw %+v, want one association MODALITY1 → ANY-SCP", infos)
	}
}

func TestAssociationPolicies(t *testing.T) {
	rec := &peerRecorder{}
	cfg := Config{
		CallingAETitlesByCalledAE: map[string][]string{"RADFLOW": {"CT1", "MR1 "}},
		AcceptAssociation: func(ai AssociationInfo) error {
			switch ai.CalledAETitle {
			case "BLOCKED":
				return ErrCalledAENotRecognized
			case "DENY":
				return errors.New("no identity")
			}
			return nil
		},
	}
	_, addr := startServer(t, cfg, rec)
	ctx := context.Background()
	for _, tc := range []struct {
		calling, called string
		reason          byte // 0: accepted
	}{
		{"CT1", "RADFLOW", 0},
		{"MR1", "RADFLOW", 0},
		{"US1", "RADFLOW", rjReasonCallingAENotRecognized},
		{"US1", "OTHER", 0}, // called AE not in the map: not restricted
		{"CT1", "BLOCKED", rjReasonCalledAENotRecognized},
		{"CT1", "DENY", rjReasonCallingAENotRecognized},
	} {
		cl, err := Dial(ctx, addr, ClientConfig{CallingAETitle: tc.calling, CalledAETitle: tc.called}, ctPC)
		var rj *RejectError
		switch {
		case tc.reason == 0 && err != nil:
			t.Errorf("%s → %s: %v, want accepted", tc.calling, tc.called, err)
		case tc.reason == 0:
			cl.Release(ctx)
		case !errors.As(err, &rj) || rj.Reason != tc.reason || rj.Result != rjPermanent:
			t.Errorf("%s → %s: %v, want permanent rejection reason %d", tc.calling, tc.called, err, tc.reason)
		}
	}
}

// dcmtkTLSArgs returns storescu/echoscu TLS options using the dev files.
func dcmtkTLSArgs(f tlsconfig.DevFiles) []string {
	return []string{"+tls", f.ClientKey, f.ClientCert, "+cf", f.CACert}
}

func TestDcmtkTLS(t *testing.T) {
	files, srvTLS, _ := devTLS(t, tlsconfig.ClientAuthRequire, true)
	rec := &peerRecorder{}
	// Uncompressed little endian only, so storescu sends CTImage.dcm as stored.
	_, addr := startServer(t, Config{TLSConfig: srvTLS, AssociationTimeout: 3 * time.Second, TransferSyntaxes: []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian}}, rec)
	h, p := hostPort(t, addr)
	if out, err := dcmtk(t, "echoscu", "--help"); err != nil || !bytes.Contains([]byte(out), []byte("--enable-tls")) {
		t.Skip("dcmtk built without TLS (echoscu has no --enable-tls)")
	}
	t.Run("echoscu", func(t *testing.T) {
		args := append(dcmtkTLSArgs(files), "-aet", "DCMTK", "-aec", "RADFLOW", h, p)
		if out, err := dcmtk(t, "echoscu", args...); err != nil {
			t.Fatalf("echoscu +tls: %v\n%s", err, out)
		}
	})
	t.Run("echoscu-anonymous-refused", func(t *testing.T) {
		args := []string{"+tla", "+cf", files.CACert, "-aet", "DCMTK", "-aec", "RADFLOW", h, p}
		out, err := dcmtk(t, "echoscu", args...)
		if err == nil {
			t.Fatalf("echoscu without a client certificate succeeded under mutual TLS\n%s", out)
		}
		t.Logf("refused as expected: %v: %s", err, out)
	})
	t.Run("storescu", func(t *testing.T) {
		file := filepath.Join(sharedDICOM(t, cs), "CTImage.dcm")
		args := append(dcmtkTLSArgs(files), "-aet", "DCMTK", "-aec", "RADFLOW", h, p, file)
		if out, err := dcmtk(t, "storescu", args...); err != nil {
			t.Fatalf("storescu +tls: %v\n%s", err, out)
		}
		sums, cns := rec.snapshot()
		if len(sums) != 1 || cns[0] != "radflow-dev-client" {
			t.Fatalf("stores %d with peers %v, want 1 from radflow-dev-client", len(sums), cns)
		}
		if _, ok := wireForms(t, file)[sums[0]]; !ok {
			t.Fatal("data set received over TLS differs from the file's")
		}
	})
}
