package export

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/tlsconfig"
)

// TestExportTLS exports over mutual DICOM TLS with development
// certificates; a destination whose certificate does not chain to the
// configured CA is refused at once (no retries) with ReasonNetwork.
func TestExportTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := tlsconfig.GenerateDev(filepath.Join(dir, "certs"), tlsconfig.DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := tlsconfig.Server(tlsconfig.ServerOptions{CertFile: files.ServerCert, KeyFile: files.ServerKey,
		ClientCAFile: files.CACert, ClientAuth: tlsconfig.ClientAuthRequire})
	if err != nil {
		t.Fatal(err)
	}
	g := startGoSCP(t, dimse.Config{TLSConfig: srvTLS})
	src := newSource(t, mrStudy(t)...)
	tlsYAML := "    tls: {ca_file: " + files.CACert + ", cert_file: " + files.ClientCert + ", key_file: " + files.ClientKey + ", server_name: localhost}\n"
	e := newExporter(t, config(t, g.addr(), "GOPACS", false, tlsYAML), src, nil)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if err != nil || res.Sent != 3 {
		t.Fatalf("Export over TLS = %v, %+v", err, res)
	}
	if infos := e.Destinations(); !infos[0].TLS {
		t.Error("DestinationInfo.TLS false")
	}
	_, ds := dataSetOf(t, src.data[src.refs[0].SOPInstanceUID])
	if r := g.received(t)[src.refs[0].SOPInstanceUID]; !bytes.Equal(r.ds, ds) {
		t.Error("data set changed over TLS")
	}

	// Another CA: the server certificate is not trusted.
	other, err := tlsconfig.GenerateDev(filepath.Join(dir, "other"), tlsconfig.DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := "    tls: {ca_file: " + other.CACert + ", cert_file: " + files.ClientCert + ", key_file: " + files.ClientKey + ", server_name: localhost}\n"
	e = newExporter(t, config(t, g.addr(), "GOPACS", false, bad), src, nil)
	res, err = e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if !errors.Is(err, ErrDestinationUnavailable) || res.Outcomes[0].Reason != ReasonNetwork {
		t.Fatalf("untrusted server: %v, %+v", err, res)
	}
	if !bytes.Contains([]byte(err.Error()), []byte("after 1 attempts")) {
		t.Errorf("certificate error retried: %v", err)
	}
}

// TestExportProbesMissingMeta: a Source that does not know the SOP class
// and transfer syntax gets them read from the file meta.
func TestExportProbesMissingMeta(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	for i := range src.refs {
		src.refs[i].SOPClassUID, src.refs[i].TransferSyntaxUID, src.refs[i].Size = "", "", 0
	}
	g := startGoSCP(t, dimse.Config{})
	e := newExporter(t, config(t, g.addr(), "GOPACS", false, ""), src, nil)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if err != nil || res.Sent != 3 || res.Outcomes[0].SOPClassUID != "1.2.840.10008.5.1.4.1.1.4" {
		t.Fatalf("%v %+v", err, res)
	}
	_, ds := dataSetOf(t, src.data[src.refs[2].SOPInstanceUID])
	if r := g.received(t)[src.refs[2].SOPInstanceUID]; !bytes.Equal(r.ds, ds) {
		t.Error("data set changed")
	}
}
