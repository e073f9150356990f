package export

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/radflow/radflow/internal/deid"
	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/tlsconfig"
)

// ErrConfig: the destinations file is unreadable or invalid (unknown key,
// bad AE title or address, external destination without de-identification
// settings, unreadable TLS or secret file...). The message names the
// destination and the field, never a secret.
var ErrConfig = errors.New("export: invalid destinations configuration")

// AutoSR in Destination.Auto pushes each result SR when it is written.
const AutoSR = "sr"

// Config is the destinations file (YAML):
//
//	destinations:
//	  - name: pacs                 # [A-Za-z0-9._-]{1,64}, unique
//	    ae_title: PACS             # called AE title
//	    address: pacs.local:104    # host:port
//	    calling_ae_title: RADFLOW  # default RADFLOW
//	    external: false
//	    tls: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: pacs.local}
//	    max_pdu: 262144            # Maximum Length we advertise, bytes
//	    timeout: 30s               # connect + TLS + A-ASSOCIATE, and A-RELEASE
//	    response_timeout: 5m       # each PDU of a C-STORE response
//	    auto: [sr]                 # push each result SR when written
//	    retry: {attempts: 3, backoff: 2s, max_backoff: 30s}
//	  - name: research
//	    ae_title: RESEARCH
//	    address: research.example.org:11112
//	    external: true             # de-identified before sending
//	    deid:
//	      project_secret_file: /etc/radflow/research.secret
//	      retain_dates: true
//	      retain_patient_characteristics: false
//	      retain_device_identity: false
//	      clean_descriptors: false
//	      keep_private: ["GEMS_ACQU_01:10"]
//	      allow_burned_in_annotation: false
type Config struct {
	Destinations []Destination `yaml:"destinations"`
}

// Destination is one DICOM AE radflow sends to. Zero durations and sizes
// take the defaults documented on Config.
type Destination struct {
	Name            string        `yaml:"name"`
	AETitle         string        `yaml:"ae_title"`
	Address         string        `yaml:"address"`
	CallingAETitle  string        `yaml:"calling_ae_title"`
	External        bool          `yaml:"external"`
	TLS             *TLSFiles     `yaml:"tls"`
	MaxPDU          uint32        `yaml:"max_pdu"`
	Timeout         time.Duration `yaml:"timeout"`
	ResponseTimeout time.Duration `yaml:"response_timeout"`
	Auto            []string      `yaml:"auto"`
	Retry           Retry         `yaml:"retry"`
	Deid            *DeidSettings `yaml:"deid"`

	tlsConfig *tls.Config
	deidOpts  deid.Options
}

// TLSFiles selects DICOM TLS (PS3.15 B.9) for a destination, built with
// tlsconfig.Client: CAFile ("" = system roots), CertFile+KeyFile for
// mutual TLS, ServerName overriding the host of Address.
type TLSFiles struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// Retry bounds the associations tried for one export after transient
// failures: Attempts in all (default 3, at most 10), waiting Backoff
// (default 2 s) before the second, doubling up to MaxBackoff (default 30 s).
type Retry struct {
	Attempts   int           `yaml:"attempts"`
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// DeidSettings are the de-identification options of an external
// destination (see package deid). ProjectSecretFile holds at least
// deid.MinSecretLen bytes (a trailing newline is ignored); it keys the
// replacement UIDs, so the same secret gives the same new UIDs across
// exports (a study sent twice lands as the same study).
type DeidSettings struct {
	ProjectSecretFile            string   `yaml:"project_secret_file"`
	RetainDates                  bool     `yaml:"retain_dates"`
	RetainPatientCharacteristics bool     `yaml:"retain_patient_characteristics"`
	RetainDeviceIdentity         bool     `yaml:"retain_device_identity"`
	CleanDescriptors             bool     `yaml:"clean_descriptors"`
	KeepPrivate                  []string `yaml:"keep_private"`
	AllowBurnedInAnnotation      bool     `yaml:"allow_burned_in_annotation"`
}

// Limits and defaults.
const (
	DefaultCallingAETitle  = "RADFLOW"
	DefaultTimeout         = 30 * time.Second
	DefaultResponseTimeout = 5 * time.Minute
	DefaultAttempts        = 3
	MaxAttempts            = 10
	DefaultBackoff         = 2 * time.Second
	DefaultMaxBackoff      = 30 * time.Second
	maxConfigBytes         = 1 << 20
)

var reName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// LoadConfig reads and validates the destinations file at path, loading
// the TLS files and project secrets it names. errors: ErrConfig.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	defer f.Close()
	return ParseConfig(f)
}

// ParseConfig reads and validates a destinations file (at most 1 MiB).
// Relative file names in it are relative to the working directory.
// errors: ErrConfig.
func ParseConfig(r io.Reader) (*Config, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrConfig, maxConfigBytes)
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Validate checks every destination, fills defaults, and loads the TLS
// configurations and project secrets. errors: ErrConfig.
func (c *Config) Validate() error {
	seen := map[string]bool{}
	for i := range c.Destinations {
		d := &c.Destinations[i]
		if !reName.MatchString(d.Name) {
			return fmt.Errorf("%w: destination %d: name %q must match %s", ErrConfig, i+1, d.Name, reName)
		}
		if seen[d.Name] {
			return fmt.Errorf("%w: destination %q defined twice", ErrConfig, d.Name)
		}
		seen[d.Name] = true
		if err := d.validate(); err != nil {
			return fmt.Errorf("%w: destination %q: %v", ErrConfig, d.Name, err)
		}
	}
	return nil
}

func (d *Destination) validate() error {
	if d.CallingAETitle == "" {
		d.CallingAETitle = DefaultCallingAETitle
	}
	if !dicom.ValidAETitle(d.AETitle) {
		return fmt.Errorf("ae_title %q: want 1-16 printable characters, no backslash", d.AETitle)
	}
	if !dicom.ValidAETitle(d.CallingAETitle) {
		return fmt.Errorf("calling_ae_title %q: want 1-16 printable characters, no backslash", d.CallingAETitle)
	}
	host, port, err := net.SplitHostPort(d.Address)
	if err != nil || host == "" {
		return fmt.Errorf("address %q: want host:port", d.Address)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: port must be 1-65535", d.Address)
	}
	if d.MaxPDU == 0 {
		d.MaxPDU = 256 << 10
	}
	if d.MaxPDU < dimse.MinPDULength || d.MaxPDU > dimse.HardMaxPDULength {
		return fmt.Errorf("max_pdu %d outside %d..%d", d.MaxPDU, dimse.MinPDULength, dimse.HardMaxPDULength)
	}
	if d.Timeout < 0 || d.ResponseTimeout < 0 || d.Retry.Backoff < 0 || d.Retry.MaxBackoff < 0 {
		return errors.New("negative duration")
	}
	if d.Timeout == 0 {
		d.Timeout = DefaultTimeout
	}
	if d.ResponseTimeout == 0 {
		d.ResponseTimeout = DefaultResponseTimeout
	}
	if d.Retry.Attempts == 0 {
		d.Retry.Attempts = DefaultAttempts
	}
	if d.Retry.Attempts < 1 || d.Retry.Attempts > MaxAttempts {
		return fmt.Errorf("retry.attempts %d outside 1..%d", d.Retry.Attempts, MaxAttempts)
	}
	if d.Retry.Backoff == 0 {
		d.Retry.Backoff = DefaultBackoff
	}
	if d.Retry.MaxBackoff == 0 {
		d.Retry.MaxBackoff = DefaultMaxBackoff
	}
	for _, a := range d.Auto {
		if a != AutoSR {
			return fmt.Errorf("auto: unknown kind %q (want %q)", a, AutoSR)
		}
	}
	if d.TLS != nil {
		c, err := tlsconfig.Client(tlsconfig.ClientOptions{CAFile: d.TLS.CAFile, CertFile: d.TLS.CertFile, KeyFile: d.TLS.KeyFile, ServerName: d.TLS.ServerName})
		if err != nil {
			return fmt.Errorf("tls: %v", err)
		}
		d.tlsConfig = c
	}
	switch {
	case d.External && d.Deid == nil:
		return errors.New("external destinations need a deid section with project_secret_file (PHI is never sent to them)")
	case !d.External && d.Deid != nil:
		return errors.New("deid applies to external destinations only; set external: true")
	case d.External:
		opts, err := d.Deid.options()
		if err != nil {
			return err
		}
		d.deidOpts = opts
	}
	return nil
}

func (s *DeidSettings) options() (deid.Options, error) {
	if s.ProjectSecretFile == "" {
		return deid.Options{}, errors.New("deid.project_secret_file is required")
	}
	b, err := os.ReadFile(s.ProjectSecretFile)
	if err != nil {
		return deid.Options{}, fmt.Errorf("deid.project_secret_file: %v", err)
	}
	secret := bytes.TrimRight(b, "\r\n")
	if len(secret) < deid.MinSecretLen {
		return deid.Options{}, fmt.Errorf("deid.project_secret_file: %v", deid.ErrNoSecret)
	}
	o := deid.Options{
		ProjectSecret:                secret,
		RetainLongitudinalFullDates:  s.RetainDates,
		RetainPatientCharacteristics: s.RetainPatientCharacteristics,
		RetainDeviceIdentity:         s.RetainDeviceIdentity,
		CleanDescriptors:             s.CleanDescriptors,
		AllowBurnedInAnnotation:      s.AllowBurnedInAnnotation,
	}
	for _, k := range s.KeepPrivate {
		p, err := deid.ParsePrivateTag(k)
		if err != nil {
			return deid.Options{}, fmt.Errorf("deid.keep_private: %v", err)
		}
		o.KeepPrivate = append(o.KeepPrivate, p)
	}
	return o, nil
}

// DestinationInfo is what GET /api/v1/destinations and Options.Authorize
// see of a destination: no address, TLS files or secrets.
type DestinationInfo struct {
	Name     string   `json:"name"`
	AETitle  string   `json:"ae_title"`
	External bool     `json:"external"`
	TLS      bool     `json:"tls"`
	Auto     []string `json:"auto"`
}

func (d *Destination) info() DestinationInfo {
	auto := append([]string{}, d.Auto...)
	return DestinationInfo{Name: d.Name, AETitle: d.AETitle, External: d.External, TLS: d.TLS != nil, Auto: auto}
}

func (d *Destination) autoSR() bool {
	for _, a := range d.Auto {
		if a == AutoSR {
			return true
		}
	}
	return false
}
