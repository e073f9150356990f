package dimse

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// dcmtk runs a dcmtk tool with TCP_NODELAY=1 and returns its combined output.
func dcmtk(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("dcmtk %s not installed: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func hostPort(t testing.TB, addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// wireForms returns the byte forms a file's data set may take on the wire
// from storescu: as stored in the file, and as dcmtk re-serialises it
// (`dcmconv -F -p`: explicit-length sequences and items, no data set
// trailing padding), which is what
// storescu sends. Each is padded to even length.
func wireForms(t *testing.T, path string) map[[32]byte]string {
	ds, _ := dataSetOf(t, path)
	forms := map[[32]byte]string{sha256.Sum256(padEven(ds)): "as in file"}
	if bin, err := exec.LookPath("dcmconv"); err == nil {
		out := filepath.Join(t.TempDir(), "conv.ds")
		if err := exec.Command(bin, "-q", "-F", "-p", path, out).Run(); err == nil {
			if b, err := os.ReadFile(out); err == nil {
				if _, ok := forms[sha256.Sum256(padEven(b))]; !ok {
					forms[sha256.Sum256(padEven(b))] = "as re-encoded by dcmtk"
				}
			}
		}
	}
	return forms
}

func padEven(b []byte) []byte {
	if len(b)%2 == 1 {
		return append(b[:len(b):len(b)], 0)
	}
	return b
}

// checkReceived asserts that every file's data set arrived byte-identical
// to what the SCU sent, with the file's SOP class/instance and transfer syntax.
func checkReceived(t *testing.T, rec *recorder, files []string) {
	t.Helper()
	got := map[[32]byte]received{}
	for _, r := range rec.all() {
		got[r.Sum] = r
	}
	for _, f := range files {
		_, meta := dataSetOf(t, f)
		var r received
		found := ""
		for sum, how := range wireForms(t, f) {
			if rr, ok := got[sum]; ok {
				r, found = rr, how
			}
		}
		if found == "" {
			t.Errorf("%s (%s): no byte-identical data set received", filepath.Base(f), meta.TransferSyntaxUID)
			continue
		}
		t.Logf("%s: %d bytes received identical %s", filepath.Base(f), r.Size, found)
		if r.TS != meta.TransferSyntaxUID || r.SOPInstance != meta.MediaStorageSOPInstanceUID || r.SOPClass != meta.MediaStorageSOPClassUID {
			t.Errorf("%s: received as %+v, file meta %+v", filepath.Base(f), r, meta)
		}
	}
}

func TestDcmtkEchoscu(t *testing.T) {
	_, addr := startServer(t, Config{}, &recorder{})
	h, p := hostPort(t, addr)
	if out, err := dcmtk(t, "echoscu", "-aet", "DCMTK", "-aec", "RADFLOW", h, p); err != nil {
		t.Fatalf("echoscu: %v\n%s", err, out)
	}
}

// shared returns the paths of the named files under shared/dicom/<dir>.
func shared(t *testing.T, dir string, names ...string) []string {
	d := sharedDICOM(t, dir)
	var out []string
	for _, n := range names {
		out = append(out, filepath.Join(d, n))
	}
	return out
}

const cs = "cornerstoneWADOImageLoader"

// TestDcmtkStorescu sends groups of files, each group in one storescu
// association proposing the group's transfer syntax, and checks that every
// data set arrives byte-identical with the SOP class/instance and transfer
// syntax of its file.
func TestDcmtkStorescu(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		ts    []string // SCP accepted list; nil = default
		files []string
	}{
		// Default list: the Implicit VR files must arrive as sent (storescu
		// converted them while Big Endian was accepted in its second context).
		{"little-endian", nil, nil, append(shared(t, cs, "CTImage.dcm", "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm", "no-pixel-data.dcm"),
			shared(t, "pydicom-data", "SC_rgb.dcm", "emri_small.dcm", "MR2_UNCR.dcm")...)},
		// Big Endian is accepted where a context offers nothing else:
		// -xb proposes it alone in the first context.
		{"big-endian", []string{"-xb"}, nil, append(shared(t, cs, "CTImage.dcm_BigEndianExplicitTransferSyntax_1.2.840.10008.1.2.2.dcm"), shared(t, "pydicom-data", "SC_rgb_expb.dcm", "emri_small_big_endian.dcm")...)},
		{"jpeg-lossless-sv1", []string{"-xs"}, nil, append(shared(t, cs, "CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm"), shared(t, "pydicom-data", "JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm")...)},
		{"jpeg-baseline", []string{"-xy"}, nil, shared(t, cs, "CTImage.dcm_JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm")},
		{"jpeg-extended", []string{"-xx"}, nil, shared(t, cs, "CTImage.dcm_JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51.dcm", "CT0012.fragmented_no_bot_jpeg_baseline.51.dcm")},
		{"j2k-lossless", []string{"-xv"}, nil, append(shared(t, cs, "CT1_J2KR"), shared(t, "pydicom-data", "US1_J2KR.dcm", "MR2_J2KR.dcm")...)},
		{"j2k", []string{"-xw"}, nil, append(shared(t, cs, "CTImage.dcm_JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91.dcm"), shared(t, "pydicom-data", "MR2_J2KI.dcm")...)},
		{"jpeg-ls-lossless", []string{"-xt"}, nil, append(shared(t, cs, "CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm"), shared(t, "pydicom-data", "emri_small_jpeg_ls_lossless.dcm", "JLSL_16_15_1_1F.dcm")...)},
		{"jpeg-ls-near-lossless", []string{"-xu"}, nil, shared(t, cs, "CTImage.dcm_JPEGLSLossyTransferSyntax_1.2.840.10008.1.2.4.81.dcm")},
		{"rle", []string{"-xr"}, nil, append(shared(t, cs, "CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm"), shared(t, "pydicom-data", "emri_small_RLE.dcm")...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			_, addr := startServer(t, Config{TransferSyntaxes: tc.ts}, rec)
			h, p := hostPort(t, addr)
			args := append(append([]string{"-aet", "DCMTK", "-aec", "RADFLOW"}, tc.flags...), h, p)
			out, err := dcmtk(t, "storescu", append(args, tc.files...)...)
			if err != nil {
				t.Fatalf("storescu: %v\n%s", err, out)
			}
			if n := len(rec.all()); n != len(tc.files) {
				t.Fatalf("%d of %d files received\n%s", n, len(tc.files), out)
			}
			checkReceived(t, rec, tc.files)
		})
	}
}

// TestDcmtkStorescuRejectedTransferSyntax: the SCP accepts only uncompressed
// transfer syntaxes; storescu proposing JPEG Lossless gets that context
// rejected (result 4), fails that file, and the uncompressed file sent on
// the same association is stored.
func TestDcmtkStorescuRejectedTransferSyntax(t *testing.T) {
	rec := &recorder{}
	_, addr := startServer(t, Config{TransferSyntaxes: []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}}, rec)
	h, p := hostPort(t, addr)
	files := shared(t, cs, "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm", "CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm")
	out, err := dcmtk(t, "storescu", append([]string{"-v", "+v", "-xs", "-aec", "RADFLOW", h, p}, files...)...)
	if err == nil {
		t.Fatalf("storescu succeeded sending a JPEG file to an uncompressed-only SCP\n%s", out)
	}
	if !strings.Contains(out, "Transfer Syntaxes Not Supported") {
		t.Errorf("storescu output does not show the rejected context:\n%s", out)
	}
	if got := rec.all(); len(got) != 1 {
		t.Fatalf("%d stores received, want the uncompressed one\n%s", len(got), out)
	}
	checkReceived(t, rec, files[:1])
}

// TestDcmtkStorescuParallel runs four storescu associations at once.
func TestDcmtkStorescuParallel(t *testing.T) {
	rec := &recorder{}
	_, addr := startServer(t, Config{MaxAssociations: 4, TransferSyntaxes: []string{JPEGExtended12Bit, ExplicitVRLittleEndian}}, rec)
	h, p := hostPort(t, addr)
	files := (shared(t, cs, "CTImage.dcm_JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51.dcm", "CT0012.fragmented_no_bot_jpeg_baseline.51.dcm"))
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := dcmtk(t, "storescu", append([]string{"-xx", "-aet", fmt.Sprintf("SCU%d", i), "-aec", "RADFLOW", h, p}, files...)...)
			if err != nil {
				errs <- fmt.Sprintf("storescu %d: %v\n%s", i, err, out)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	got := rec.all()
	if len(got) != 4*len(files) {
		t.Fatalf("%d stores received, want %d", len(got), 4*len(files))
	}
	callers := map[string]int{}
	for _, r := range got {
		callers[r.CallingAE]++
	}
	if len(callers) != 4 {
		t.Fatalf("calling AEs %v", callers)
	}
	checkReceived(t, rec, files)
}

func TestDcmtkAERejections(t *testing.T) {
	_, addr := startServer(t, Config{AETitle: "RADFLOW", CheckCalledAETitle: true, AllowedCallingAETitles: []string{"FRIEND"}}, &recorder{})
	h, p := hostPort(t, addr)
	for _, tc := range []struct{ calling, called, want string }{
		{"FRIEND", "WRONG", "Called AE Title Not Recognized"},
		{"STRANGER", "RADFLOW", "Calling AE Title Not Recognized"},
		{"FRIEND", "RADFLOW", ""},
	} {
		out, err := dcmtk(t, "echoscu", "-aet", tc.calling, "-aec", tc.called, h, p)
		if tc.want == "" {
			if err != nil {
				t.Errorf("echoscu %s->%s: %v\n%s", tc.calling, tc.called, err, out)
			}
			continue
		}
		if err == nil || !strings.Contains(strings.ToLower(out), strings.ToLower(tc.want)) {
			t.Errorf("echoscu %s->%s: err %v, output lacks %q:\n%s", tc.calling, tc.called, err, tc.want, out)
		}
	}
}

// TestGoSCUToDcmtkStorescp sends files with our SCU (4 KiB PDUs advertised
// by storescp) to dcmtk storescp in bit-preserving mode and compares the
// data sets it wrote.
func TestGoSCUToDcmtkStorescp(t *testing.T) {
	bin, err := exec.LookPath("storescp")
	if err != nil {
		t.Skipf("dcmtk storescp not installed: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port := hostPort(t, l.Addr().String())
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "-aet", "STORESCP", "+xa", "+B", "+uf", "-pdu", "4096", "-od", dir, port)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	files := append(shared(t, cs, "CTImage.dcm", "CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm"), shared(t, "pydicom-data", "SC_rgb_expb.dcm", "emri_small_RLE.dcm")...)
	pcs, err := StorageContexts(files)
	if err != nil {
		t.Fatal(err)
	}
	var cl *Client
	for i := 0; i < 100; i++ { // storescp needs a moment to listen
		if cl, err = Dial(context.Background(), "127.0.0.1:"+port, ClientConfig{CalledAETitle: "STORESCP"}, pcs); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Dial storescp: %v\n%s", err, log.String())
	}
	if cl.PeerMaxPDULength() != 4096 {
		t.Errorf("peer max PDU %d, want 4096", cl.PeerMaxPDULength())
	}
	if err := cl.Echo(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if st, err := cl.StoreFile(context.Background(), f); err != nil || st != StatusSuccess {
			t.Fatalf("StoreFile(%s) = 0x%04X, %v", filepath.Base(f), st, err)
		}
	}
	if err := cl.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[[32]byte]string{}
	for _, f := range files {
		ds, _ := dataSetOf(t, f)
		want[sha256.Sum256(ds)] = filepath.Base(f)
	}
	var outs []string
	for i := 0; i < 100 && len(outs) < len(files); i++ {
		outs, _ = filepath.Glob(filepath.Join(dir, "*"))
		time.Sleep(20 * time.Millisecond)
	}
	if len(outs) != len(files) {
		t.Fatalf("storescp wrote %d files, want %d\n%s", len(outs), len(files), log.String())
	}
	for _, o := range outs {
		ds, _ := dataSetOf(t, o)
		if _, ok := want[sha256.Sum256(ds)]; !ok {
			t.Errorf("storescp file %s: data set not byte-identical to any sent file", filepath.Base(o))
		}
		delete(want, sha256.Sum256(ds))
	}
}
