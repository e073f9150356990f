package dimse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// AssociationInfo describes an association request for
// Config.AcceptAssociation.
type AssociationInfo struct {
	CallingAETitle string
	CalledAETitle  string
	RemoteAddr     net.Addr
	// PeerCertificate is the client certificate verified by the TLS
	// handshake (mutual TLS), nil without TLS or without a client
	// certificate.
	PeerCertificate *x509.Certificate
}

// Errors Config.AcceptAssociation returns to choose the A-ASSOCIATE-RJ
// reason; any other error rejects with "calling AE title not recognized".
var (
	ErrCallingAENotRecognized = errors.New("dimse: calling AE title not recognized")
	ErrCalledAENotRecognized  = errors.New("dimse: called AE title not recognized")
)

// serverHandshake runs the TLS handshake of an accepted connection when
// Config.TLSConfig is set, bounded by the ARTIM deadline. It returns the
// connection to use and the verified client certificate (nil when none
// was sent or verified). On failure the connection is closed and ok is false.
func (s *Server) serverHandshake(e *connSlot, deadline time.Time) (_ net.Conn, peer *x509.Certificate, ok bool) {
	nc := e.nc
	if s.cfg.TLSConfig == nil {
		return nc, nil, true
	}
	tc := tls.Server(nc, s.cfg.TLSConfig)
	ctx, cancel := context.WithDeadline(s.ctx, deadline)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		// The reason only (e.g. "certificate required", "bad certificate"):
		// no certificate contents are logged. Evictions are counted by
		// shedLocked instead.
		if s.wasEvicted(e) {
			nc.Close()
			return nil, nil, false
		}
		s.cfg.Logger.Info("dimse: TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err.Error())
		nc.Close()
		return nil, nil, false
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
		peer = st.VerifiedChains[0][0]
	}
	return tc, peer, true
}

// evaluatePeer applies CallingAETitlesByCalledAE and AcceptAssociation;
// it returns the A-ASSOCIATE-RJ (result, source, reason) or nil.
func (a *association) evaluatePeer() *[3]byte {
	cfg := &a.s.cfg
	rq := a.rq
	if allowed, ok := cfg.CallingAETitlesByCalledAE[rq.CalledAE]; ok {
		found := false
		for _, ae := range allowed {
			found = found || strings.TrimSpace(ae) == rq.CallingAE
		}
		if !found {
			return &[3]byte{rjPermanent, rjSourceUser, rjReasonCallingAENotRecognized}
		}
	}
	if cfg.AcceptAssociation == nil {
		return nil
	}
	err := cfg.AcceptAssociation(AssociationInfo{CallingAETitle: rq.CallingAE, CalledAETitle: rq.CalledAE, RemoteAddr: a.remote, PeerCertificate: a.peerCert})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrCalledAENotRecognized):
		return &[3]byte{rjPermanent, rjSourceUser, rjReasonCalledAENotRecognized}
	default:
		return &[3]byte{rjPermanent, rjSourceUser, rjReasonCallingAENotRecognized}
	}
}

// clientHandshake runs the SCU's TLS handshake on nc within ctx (the
// association setup deadline). Without
// a ServerName in cfg, the host of addr is verified.
func clientHandshake(ctx context.Context, nc net.Conn, cfg *tls.Config, addr string) (net.Conn, error) {
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("dimse: TLS handshake: %w", err)
	}
	return tc, nil
}
