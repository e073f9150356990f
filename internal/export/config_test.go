package export

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigDefaultsAndDeid(t *testing.T) {
	secret := secretFile(t)
	cfg, err := ParseConfig(strings.NewReader(`destinations:
  - name: pacs
    ae_title: PACS
    address: 10.0.0.5:104
  - name: research
    ae_title: RESEARCH
    address: "[::1]:11112"
    calling_ae_title: RADFLOW_OUT
    external: true
    max_pdu: 65536
    timeout: 10s
    response_timeout: 1m
    retry: {attempts: 5, backoff: 1s, max_backoff: 8s}
    deid:
      project_secret_file: ` + secret + `
      retain_dates: true
      retain_device_identity: true
      keep_private: ["GEMS_ACQU_01:10"]
`))
	if err != nil {
		t.Fatal(err)
	}
	p, r := cfg.Destinations[0], cfg.Destinations[1]
	if p.CallingAETitle != "RADFLOW" || p.MaxPDU != 256<<10 || p.Timeout != 30*time.Second || p.ResponseTimeout != 5*time.Minute ||
		p.Retry != (Retry{Attempts: 3, Backoff: 2 * time.Second, MaxBackoff: 30 * time.Second}) || p.External {
		t.Errorf("defaults: %+v", p)
	}
	o := r.deidOpts
	if string(o.ProjectSecret) != "0123456789abcdef-test-secret" || !o.RetainLongitudinalFullDates || !o.RetainDeviceIdentity ||
		o.RetainPatientCharacteristics || len(o.KeepPrivate) != 1 || o.KeepPrivate[0].Creator != "GEMS_ACQU_01" || o.KeepPrivate[0].Element != 0x10 {
		t.Errorf("deid options: %+v", o)
	}
	if r.MaxPDU != 65536 || r.Timeout != 10*time.Second || r.Retry.Attempts != 5 || r.CallingAETitle != "RADFLOW_OUT" {
		t.Errorf("research: %+v", r)
	}
	// Backoff doubles up to the cap (±10%).
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 9: 8 * time.Second} {
		if got := backoff(r.Retry, n); got < want*9/10 || got > want*11/10 {
			t.Errorf("backoff(%d) = %v, want %v ±10%%", n, got, want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("tooshort\n"), 0o600)
	ok := secretFile(t)
	base := "destinations:\n  - name: d\n    ae_title: PACS\n    address: h:104\n"
	cases := map[string]string{
		"unknown key":          base + "    colour: red\n",
		"bad name":             "destinations:\n  - name: 'a b'\n    ae_title: PACS\n    address: h:104\n",
		"duplicate":            base + "  - name: d\n    ae_title: X\n    address: h:1\n",
		"long AE":              "destinations:\n  - name: d\n    ae_title: ABCDEFGHIJKLMNOPQ\n    address: h:104\n",
		"backslash AE":         "destinations:\n  - name: d\n    ae_title: 'A\\B'\n    address: h:104\n",
		"no port":              "destinations:\n  - name: d\n    ae_title: PACS\n    address: h\n",
		"port 0":               "destinations:\n  - name: d\n    ae_title: PACS\n    address: h:0\n",
		"small PDU":            base + "    max_pdu: 100\n",
		"auto kind":            base + "    auto: [images]\n",
		"attempts":             base + "    retry: {attempts: 11}\n",
		"negative timeout":     base + "    timeout: -1s\n",
		"external no deid":     base + "    external: true\n",
		"deid on internal":     base + "    deid: {project_secret_file: " + ok + "}\n",
		"no secret file":       base + "    external: true\n    deid: {retain_dates: true}\n",
		"missing secret":       base + "    external: true\n    deid: {project_secret_file: /nonexistent/secret}\n",
		"short secret":         base + "    external: true\n    deid: {project_secret_file: " + short + "}\n",
		"bad private tag":      base + "    external: true\n    deid: {project_secret_file: " + ok + ", keep_private: [nocolon]}\n",
		"missing CA":           base + "    tls: {ca_file: /nonexistent/ca.pem}\n",
		"cert without key":     base + "    tls: {cert_file: /nonexistent/c.pem}\n",
		"not a list":           "destinations: 3\n",
		"duration not parsing": base + "    timeout: soon\n",
	}
	for name, y := range cases {
		_, err := ParseConfig(strings.NewReader(y))
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
			continue
		}
		if strings.Contains(err.Error(), "0123456789abcdef") || strings.Contains(err.Error(), "tooshort") {
			t.Errorf("%s: error reveals the secret: %v", name, err)
		}
	}
	if _, err := LoadConfig("/nonexistent/destinations.yaml"); !errors.Is(err, ErrConfig) {
		t.Errorf("LoadConfig(missing) = %v", err)
	}
	if cfg, err := ParseConfig(strings.NewReader("")); err != nil || len(cfg.Destinations) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

func TestNewRejectsUnvalidatedConfig(t *testing.T) {
	cfg := &Config{Destinations: []Destination{{Name: "x", AETitle: "X", Address: "h:1", External: true}}}
	if _, err := New(cfg, Options{Source: newSource(t)}); !errors.Is(err, ErrConfig) {
		t.Fatalf("New(unvalidated) = %v", err)
	}
	if _, err := New(&Config{}, Options{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("New(no source) = %v", err)
	}
}
