package auth

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// Identity is what a peer (a TLS client certificate or a calling AE
// title) is mapped to.
type Identity struct {
	// ID is the Principal's ID (default: the map key).
	ID string `yaml:"id" json:"id,omitempty"`
	// Kind defaults to KindAE for DIMSE, KindService for HTTP.
	Kind         Kind     `yaml:"kind" json:"kind,omitempty"`
	Roles        []string `yaml:"roles" json:"roles"`
	Organisation string   `yaml:"organisation" json:"organisation,omitempty"`
	// AETitles restricts a certificate identity to these calling AE
	// titles (empty: any), so one sender's certificate cannot speak as
	// another AE.
	AETitles []string `yaml:"ae_titles" json:"ae_titles,omitempty"`
}

// PeerConfig maps DIMSE peers (and HTTPS client certificates) to identities.
type PeerConfig struct {
	// Certificates maps a verified client certificate to an identity, by
	// its subject Common Name or one of its subject alternative names
	// (DNS name, e-mail address, URI), looked up in that order.
	Certificates map[string]Identity `yaml:"certificates" json:"certificates,omitempty"`
	// AETitles maps a calling AE title to an identity for associations
	// without a client certificate (AuthMethod ae: no cryptographic proof).
	AETitles map[string]Identity `yaml:"ae_titles" json:"ae_titles,omitempty"`
	// DefaultAE is the identity of calling AE titles not in AETitles; nil:
	// they are unauthenticated.
	DefaultAE *Identity `yaml:"default_ae" json:"default_ae,omitempty"`
	// RequireCertificate refuses associations without a verified client
	// certificate (AE-title-only identities are then never used).
	RequireCertificate bool `yaml:"require_certificate" json:"require_certificate,omitempty"`
}

// PeerMapper turns a calling AE title and/or a verified client certificate
// into a Principal. It never verifies certificates itself: pass only
// certificates that the TLS handshake verified (dimse
// StoreRequest.PeerCertificate, http.Request.TLS.VerifiedChains[0][0]).
type PeerMapper struct{ cfg PeerConfig }

// NewPeerMapper checks cfg (AE titles 1..16 characters, every identity
// with at least one role). errors: ErrInvalidConfig.
func NewPeerMapper(cfg PeerConfig) (*PeerMapper, error) {
	check := func(what, key string, id Identity) error {
		if len(id.Roles) == 0 {
			return fmt.Errorf("%w: %s %q has no roles", ErrInvalidConfig, what, key)
		}
		for _, ae := range id.AETitles {
			if !validAETitle(ae) {
				return fmt.Errorf("%w: %s %q: AE title %q", ErrInvalidConfig, what, key, ae)
			}
		}
		return nil
	}
	for k, id := range cfg.Certificates {
		if err := check("certificate", k, id); err != nil {
			return nil, err
		}
	}
	for k, id := range cfg.AETitles {
		if !validAETitle(k) {
			return nil, fmt.Errorf("%w: AE title %q", ErrInvalidConfig, k)
		}
		if err := check("AE title", k, id); err != nil {
			return nil, err
		}
	}
	if cfg.DefaultAE != nil {
		if err := check("default AE", "", *cfg.DefaultAE); err != nil {
			return nil, err
		}
	}
	return &PeerMapper{cfg: cfg}, nil
}

func validAETitle(ae string) bool {
	ae = strings.TrimSpace(ae)
	if ae == "" || len(ae) > 16 {
		return false
	}
	for i := 0; i < len(ae); i++ {
		if ae[i] < 0x20 || ae[i] > 0x7e || ae[i] == '\\' {
			return false
		}
	}
	return true
}

// certNames lists the names a certificate can be mapped by: subject CN,
// DNS SANs, e-mail SANs, URI SANs.
func certNames(c *x509.Certificate) []string {
	var names []string
	if c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	names = append(names, c.DNSNames...)
	names = append(names, c.EmailAddresses...)
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	return names
}

// CertificatePrincipal maps a verified client certificate (HTTP or DIMSE)
// to its Principal (AuthMethod tls, Kind from the identity, default ae).
// errors: ErrUnauthenticated ("client certificate not mapped to an identity").
func (m *PeerMapper) CertificatePrincipal(cert *x509.Certificate) (Principal, error) {
	key, id, err := m.lookupCert(cert)
	if err != nil {
		return Principal{}, err
	}
	return principalFor(key, id, MethodTLS), nil
}

func (m *PeerMapper) lookupCert(cert *x509.Certificate) (string, Identity, error) {
	if cert == nil {
		return "", Identity{}, unauthenticated("no client certificate")
	}
	for _, n := range certNames(cert) {
		if id, ok := m.cfg.Certificates[n]; ok {
			return n, id, nil
		}
	}
	return "", Identity{}, unauthenticated("client certificate not mapped to an identity")
}

// AssociationPrincipal returns the Principal of a DIMSE association from
// its calling AE title and, with mutual TLS, its verified client
// certificate (nil without). With a certificate the certificate's identity
// is used (AuthMethod tls) and the AE title must be one it may use;
// without, the AE title's identity (AuthMethod ae) unless
// RequireCertificate. Principal.AETitle is the calling AE title.
// errors: ErrUnauthenticated with the reason.
func (m *PeerMapper) AssociationPrincipal(callingAE string, cert *x509.Certificate) (Principal, error) {
	callingAE = strings.TrimSpace(callingAE)
	if cert != nil {
		key, id, err := m.lookupCert(cert)
		if err != nil {
			return Principal{}, err
		}
		if len(id.AETitles) > 0 && !slices.Contains(trimAll(id.AETitles), callingAE) {
			return Principal{}, unauthenticated("calling AE title not allowed for this client certificate")
		}
		p := principalFor(key, id, MethodTLS)
		p.AETitle = callingAE
		return p, nil
	}
	if m.cfg.RequireCertificate {
		return Principal{}, unauthenticated("client certificate required")
	}
	if id, ok := m.cfg.AETitles[callingAE]; ok {
		p := principalFor(callingAE, id, MethodAE)
		p.AETitle = callingAE
		return p, nil
	}
	if m.cfg.DefaultAE != nil {
		p := principalFor(callingAE, *m.cfg.DefaultAE, MethodAE)
		p.ID, p.AETitle = callingAE, callingAE
		return p, nil
	}
	return Principal{}, unauthenticated("unknown calling AE title")
}

func principalFor(key string, id Identity, method Method) Principal {
	p := Principal{ID: id.ID, Kind: id.Kind, Roles: append([]string{}, id.Roles...), Organisation: id.Organisation, AuthMethod: method}
	if p.ID == "" {
		p.ID = key
	}
	if p.Kind == "" {
		p.Kind = KindAE
	}
	return p
}

func trimAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.TrimSpace(s)
	}
	return out
}
