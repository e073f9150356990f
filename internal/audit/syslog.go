package audit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Syslog defaults (PS3.15 A.6/A.7): facility 10 (security/authorization),
// severity 5 (notice) → PRI <85>; MSGID DICOM+RFC3881.
const (
	SyslogFacility = 10
	SyslogSeverity = 5
	SyslogMSGID    = "DICOM+RFC3881"
	// maxUDPMessage is the largest datagram sent over UDP (RFC 5426 allows
	// up to 65507 bytes over IPv4; receivers should accept 2048).
	maxUDPMessage = 65507
)

// ErrSyslog is wrapped by SyslogSink configuration errors.
var ErrSyslog = errors.New("audit: syslog")

// SyslogConfig configures a SyslogSink.
type SyslogConfig struct {
	// Network is "tls" (RFC 5425, octet-counting framing), "tcp" (RFC 6587
	// octet counting, for a trusted network) or "udp" (RFC 5426, one
	// message per datagram).
	Network string
	// Address is host:port (the registered ports are 6514 for TLS and 514
	// for UDP/TCP).
	Address string
	// TLS is the client TLS configuration for "tls" (root CAs, client
	// certificate for mutual authentication); nil means the system roots.
	TLS *tls.Config
	// Hostname is the HOSTNAME header field; "" means os.Hostname().
	Hostname string
	// AppName is the APP-NAME header field; "" means "radflow".
	AppName string
	// Source identifies radflow in the audit message.
	Source Source
	// DialTimeout and WriteTimeout default to 5 s.
	DialTimeout, WriteTimeout time.Duration
}

// SyslogSink sends each record as a DICOM audit message (DICOMAuditMessage)
// in an RFC 5424 syslog message. A TCP/TLS connection is dialled lazily,
// kept, and re-dialled after an error; use it through a Forwarder (Config.Sinks)
// so that failures are retried.
type SyslogSink struct {
	cfg  SyslogConfig
	mu   sync.Mutex
	conn net.Conn
}

// NewSyslogSink checks cfg and returns a sink; it does not connect yet.
// Errors wrap ErrSyslog.
func NewSyslogSink(cfg SyslogConfig) (*SyslogSink, error) {
	switch cfg.Network {
	case "tls", "tcp", "udp":
	default:
		return nil, fmt.Errorf("%w: network %q: want tls, tcp or udp", ErrSyslog, cfg.Network)
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("%w: address: %v", ErrSyslog, err)
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	cfg.Hostname = headerField(cfg.Hostname, 255)
	if cfg.AppName == "" {
		cfg.AppName = "radflow"
	}
	cfg.AppName = headerField(cfg.AppName, 48)
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	return &SyslogSink{cfg: cfg}, nil
}

// headerField makes s a valid RFC 5424 header field: PRINTUSASCII (33–126),
// at most max bytes; "-" (NILVALUE) when empty.
func headerField(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		if s[i] >= 33 && s[i] <= 126 {
			b.WriteByte(s[i])
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// FormatSyslog returns rec as one RFC 5424 SYSLOG-MSG (no transport
// framing): "<85>1 TIMESTAMP HOSTNAME APP-NAME PROCID DICOM+RFC3881 - "
// followed by a UTF-8 BOM and the DICOM audit message XML. TIMESTAMP is
// the record time in UTC with microseconds; PROCID is the process id.
func FormatSyslog(rec Record, hostname, appName string, src Source) ([]byte, error) {
	xml, err := DICOMAuditMessage(rec, src)
	if err != nil {
		return nil, err
	}
	hdr := fmt.Sprintf("<%d>1 %s %s %s %d %s - \ufeff", SyslogFacility*8+SyslogSeverity,
		rec.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), headerField(hostname, 255),
		headerField(appName, 48), os.Getpid(), SyslogMSGID)
	return append([]byte(hdr), xml...), nil
}

// Forward formats rec and sends it: over TCP/TLS framed as
// "MSG-LEN SP SYSLOG-MSG" (octet counting, RFC 5425 §4.3), over UDP as
// one datagram. A failed write closes the connection; the next call
// re-dials.
func (s *SyslogSink) Forward(ctx context.Context, rec Record) error {
	msg, err := FormatSyslog(rec, s.cfg.Hostname, s.cfg.AppName, s.cfg.Source)
	if err != nil {
		return err
	}
	if s.cfg.Network == "udp" {
		if len(msg) > maxUDPMessage {
			return fmt.Errorf("%w: message of %d bytes exceeds the UDP limit", ErrSyslog, len(msg))
		}
	} else {
		msg = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(s.cfg.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.conn.SetWriteDeadline(deadline)
	if _, err := s.conn.Write(msg); err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("audit: syslog write: %w", err)
	}
	return nil
}

func (s *SyslogSink) dial(ctx context.Context) error {
	d := &net.Dialer{Timeout: s.cfg.DialTimeout}
	var (
		conn net.Conn
		err  error
	)
	switch s.cfg.Network {
	case "tls":
		cfg := s.cfg.TLS
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		if cfg.MinVersion == 0 {
			cfg.MinVersion = tls.VersionTLS12
		}
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(s.cfg.Address)
			cfg.ServerName = host
		}
		conn, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", s.cfg.Address)
	default:
		conn, err = d.DialContext(ctx, s.cfg.Network, s.cfg.Address)
	}
	if err != nil {
		return fmt.Errorf("audit: syslog dial %s %s: %w", s.cfg.Network, s.cfg.Address, err)
	}
	s.conn = conn
	return nil
}

// Close closes the connection, if any.
func (s *SyslogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
