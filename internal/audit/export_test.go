package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var src = Source{ID: "radflow-test", SiteID: "PPTH", AETitle: "RADFLOW"}

func storeRecord() Record {
	r := rec(7)
	r.Action = "instance:store"
	r.SubjectID, r.SubjectKind, r.Roles = "CT_SCANNER_1", KindAE, nil
	r.Protocol = ProtocolDIMSE
	r.Resource = Resource{Type: "instance", StudyInstanceUID: studyRoot + ".7", SeriesInstanceUID: studyRoot + ".7.1",
		SOPInstanceUID: studyRoot + ".7.1.1"}
	r.Detail = map[string]string{"dimse_status": "0000", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2", "calling_ae": "CT_SCANNER_1"}
	return r
}

func TestFHIRAuditEvent(t *testing.T) {
	r := rec(3)
	r.BreakGlass, r.BreakGlassReason = true, "trauma bay, no consent on file"
	r.Resource.Model = "chest-xray@1.2.0"
	b, err := FHIRAuditEventJSON(r, src)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	get := func(path string) any {
		var cur any = m
		for _, p := range strings.Split(path, ".") {
			if i, err := strconv.Atoi(p); err == nil {
				arr, ok := cur.([]any)
				if !ok || i >= len(arr) {
					t.Fatalf("%s: no element %d", path, i)
				}
				cur = arr[i]
				continue
			}
			obj, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%s: not an object at %s", path, p)
			}
			if cur, ok = obj[p]; !ok {
				t.Fatalf("%s: missing %s in %s", path, p, b)
			}
		}
		return cur
	}
	want := map[string]any{
		"resourceType":                     "AuditEvent",
		"id":                               "ev-3",
		"type.system":                      "http://dicom.nema.org/resources/ontology/DCM",
		"type.code":                        "110104",
		"type.display":                     "DICOM Instances Transferred",
		"subtype.0.code":                   "110127",
		"action":                           "R",
		"recorded":                         "2025-03-01T12:00:00.000003Z",
		"outcome":                          "0",
		"purposeOfEvent.0.coding.0.system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
		"purposeOfEvent.0.coding.0.code":   "TREAT",
		"agent.0.requestor":                true,
		"agent.0.who.identifier.value":     "dr.house",
		"agent.0.network.address":          "10.1.2.3",
		"agent.0.network.type":             "2",
		"agent.0.type.coding.0.code":       "110152",
		"agent.0.role.0.coding.0.code":     "radiologist",
		"agent.1.requestor":                false,
		"agent.1.who.identifier.value":     "radflow-test",
		"agent.2.who.type":                 "Organization",
		"agent.2.who.identifier.value":     "Princeton-Plainsboro",
		"source.site":                      "PPTH",
		"source.observer.identifier.value": "radflow-test",
		"source.type.0.code":               "4",
		"entity.0.what.identifier.system":  "urn:dicom:uid",
		"entity.0.what.identifier.value":   "urn:oid:" + studyRoot + ".3",
		"entity.0.type.code":               "2",
		"entity.0.role.code":               "3",
		"entity.1.what.identifier.value":   "chest-xray@1.2.0",
		"entity.2.name":                    "break-glass",
		"entity.2.description":             "trauma bay, no consent on file",
	}
	for path, v := range want {
		if got := get(path); got != v {
			t.Errorf("%s = %v, want %v", path, got, v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, get("recorded").(string)); err != nil {
		t.Error(err)
	}
	// Outcome codes and event types for the other actions.
	for _, c := range []struct {
		action, op string
		outcome    Outcome
		code, act  string
		oc         string
	}{
		{"study:read", "qido", OutcomeSuccess, "110112", "E", "0"},
		{"instance:store", "", OutcomeError, "110104", "C", "8"},
		{"result:read", "", OutcomeDenied, "110110", "R", "4"},
		{"authentication", "", OutcomeUnauthenticated, "110114", "E", "4"},
		{"policy", "", OutcomeDenied, "110113", "E", "4"},
		{"audit:verify", "", OutcomeSuccess, "110101", "R", "0"},
		{"export", "", OutcomeSuccess, "110106", "R", "0"},
		{"instance:delete", "recover-unflushed", OutcomeSuccess, "110105", "D", "0"},
	} {
		r := rec(1)
		r.Action, r.Outcome = c.action, c.outcome
		if c.op != "" {
			r.Detail = map[string]string{"operation": c.op}
		}
		a := ToFHIR(r, Source{})
		if a.Type.Code != c.code || a.Action != c.act || a.Outcome != c.oc || a.Source.Observer.Identifier.Value != "radflow" {
			t.Errorf("%s/%s/%s → type %s action %s outcome %s", c.action, c.op, c.outcome, a.Type.Code, a.Action, a.Outcome)
		}
	}
}

// xmlNode is a generic XML element tree for structural checks.
type xmlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []xmlNode  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n xmlNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n xmlNode) all(name string) []xmlNode {
	var out []xmlNode
	for _, c := range n.Children {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
	}
	return out
}

func (n xmlNode) one(t *testing.T, name string) xmlNode {
	t.Helper()
	c := n.all(name)
	if len(c) != 1 {
		t.Fatalf("<%s> has %d <%s>, want 1", n.XMLName.Local, len(c), name)
	}
	return c[0]
}

func checkDICOMStore(t *testing.T, doc []byte, r Record) {
	t.Helper()
	if !bytes.HasPrefix(doc, []byte(`<?xml version="1.0" encoding="UTF-8"?><AuditMessage>`)) {
		t.Fatalf("document start: %.80s", doc)
	}
	var m xmlNode
	if err := xml.Unmarshal(doc, &m); err != nil {
		t.Fatalf("XML does not parse: %v\n%s", err, doc)
	}
	// Element order of the schema: EventIdentification, ActiveParticipant+,
	// AuditSourceIdentification, ParticipantObjectIdentification*.
	var order []string
	for _, c := range m.Children {
		order = append(order, c.XMLName.Local)
	}
	if got := strings.Join(order, ","); got != "EventIdentification,ActiveParticipant,ActiveParticipant,AuditSourceIdentification,ParticipantObjectIdentification" {
		t.Fatalf("AuditMessage children %s", got)
	}
	ev := m.one(t, "EventIdentification")
	if ev.attr("EventActionCode") != "C" || ev.attr("EventOutcomeIndicator") != "0" || ev.attr("EventDateTime") != "2025-03-01T12:00:00.000007Z" {
		t.Errorf("EventIdentification attrs %v", ev.Attrs)
	}
	id := ev.one(t, "EventID")
	if id.attr("csd-code") != "110104" || id.attr("codeSystemName") != "DCM" || id.attr("originalText") != "DICOM Instances Transferred" {
		t.Errorf("EventID %v", id.Attrs)
	}
	if p := ev.one(t, "PurposeOfUse"); p.attr("csd-code") != "TREAT" || p.attr("codeSystemName") != "2.16.840.1.113883.5.8" {
		t.Errorf("PurposeOfUse %v", p.Attrs)
	}
	if d := ev.one(t, "EventOutcomeDescription").Text; !strings.Contains(d, "dimse_status=0000") {
		t.Errorf("EventOutcomeDescription %q", d)
	}
	ap := m.all("ActiveParticipant")
	if ap[0].attr("UserID") != "CT_SCANNER_1" || ap[0].attr("UserIsRequestor") != "true" || ap[0].attr("NetworkAccessPointID") != "10.1.2.3" ||
		ap[0].attr("NetworkAccessPointTypeCode") != "2" || ap[0].one(t, "RoleIDCode").attr("csd-code") != "110153" {
		t.Errorf("requestor %v", ap[0])
	}
	if ap[1].attr("UserID") != "RADFLOW" || ap[1].attr("UserIsRequestor") != "false" || ap[1].one(t, "RoleIDCode").attr("csd-code") != "110152" {
		t.Errorf("radflow participant %v", ap[1])
	}
	as := m.one(t, "AuditSourceIdentification")
	if as.attr("AuditSourceID") != "radflow-test" || as.attr("AuditEnterpriseSiteID") != "PPTH" || as.one(t, "AuditSourceTypeCode").attr("csd-code") != "4" {
		t.Errorf("AuditSourceIdentification %v", as)
	}
	po := m.one(t, "ParticipantObjectIdentification")
	if po.attr("ParticipantObjectID") != r.Resource.StudyInstanceUID || po.attr("ParticipantObjectTypeCode") != "2" ||
		po.attr("ParticipantObjectTypeCodeRole") != "3" {
		t.Errorf("ParticipantObjectIdentification %v", po.Attrs)
	}
	if c := po.one(t, "ParticipantObjectIDTypeCode"); c.attr("csd-code") != "110180" || c.attr("originalText") != "Study Instance UID" {
		t.Errorf("IDTypeCode %v", c.Attrs)
	}
	sop := po.one(t, "ParticipantObjectDescription").one(t, "SOPClass")
	if sop.attr("UID") != "1.2.840.10008.5.1.4.1.1.2" || sop.attr("NumberOfInstances") != "1" ||
		sop.one(t, "Instance").attr("UID") != r.Resource.SOPInstanceUID {
		t.Errorf("SOPClass %v", sop)
	}
	det := po.one(t, "ParticipantObjectDetail")
	if v, _ := base64.StdEncoding.DecodeString(det.attr("value")); det.attr("type") != "SeriesInstanceUID" || string(v) != r.Resource.SeriesInstanceUID {
		t.Errorf("detail %v", det.Attrs)
	}
}

func TestDICOMAuditMessage(t *testing.T) {
	r := storeRecord()
	doc, err := DICOMAuditMessage(r, src)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(doc, "\r\n") {
		t.Fatal("message contains newlines")
	}
	checkDICOMStore(t, doc, r)
}

// syslogHeader matches an RFC 5424 header as radflow writes it, with
// the BOM that starts the MSG.
var syslogHeader = regexp.MustCompile(`^<85>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S{1,255}) (\S{1,48}) (\d+) DICOM\+RFC3881 - \x{FEFF}`)

// readOctetCounted reads one "LEN SP MSG" frame (RFC 5425 §4.3).
func readOctetCounted(br *bufio.Reader) ([]byte, error) {
	lenStr, err := br.ReadString(' ')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
	if err != nil || n <= 0 || n > 1<<20 || strings.HasPrefix(lenStr, "0") {
		return nil, fmt.Errorf("bad MSG-LEN %q", lenStr)
	}
	msg := make([]byte, n)
	_, err = io.ReadFull(br, msg)
	return msg, err
}

func checkSyslogMessage(t *testing.T, msg []byte, r Record) {
	t.Helper()
	m := syslogHeader.FindSubmatch(msg)
	if m == nil {
		t.Fatalf("not an RFC 5424 message as expected: %.120q", msg)
	}
	ts, err := time.Parse(time.RFC3339Nano, string(m[1]))
	if err != nil || !ts.Equal(r.Time.Truncate(time.Microsecond)) {
		t.Errorf("TIMESTAMP %s, want %s", m[1], r.Time)
	}
	if string(m[2]) != "ris-node-1" || string(m[3]) != "radflow" {
		t.Errorf("HOSTNAME %s APP-NAME %s", m[2], m[3])
	}
	checkDICOMStore(t, msg[len(m[0]):], r)
}

func startTCP(t *testing.T, tlsCfg *tls.Config) (addr string, frames <-chan []byte) {
	var ln net.Listener
	var err error
	if tlsCfg != nil {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan []byte, 16)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			msg, err := readOctetCounted(br)
			if err != nil {
				close(ch)
				return
			}
			ch <- msg
		}
	}()
	return ln.Addr().String(), ch
}

func recv(t *testing.T, ch <-chan []byte) []byte {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("listener saw a framing error or closed")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no syslog message received")
	}
	return nil
}

func TestSyslogTCPOctetCounting(t *testing.T) {
	addr, frames := startTCP(t, nil)
	s, err := NewSyslogSink(SyslogConfig{Network: "tcp", Address: addr, Hostname: "ris-node-1", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := storeRecord()
	for i := 0; i < 2; i++ { // two frames back to back on one connection
		if err := s.Forward(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	checkSyslogMessage(t, recv(t, frames), r)
	checkSyslogMessage(t, recv(t, frames), r)
}

func selfSignedTLS(t *testing.T) (server *tls.Config, roots *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "audit-repo"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, roots
}

func TestSyslogTLS(t *testing.T) {
	serverCfg, roots := selfSignedTLS(t)
	addr, frames := startTCP(t, serverCfg)
	// Without the test CA the handshake fails: the sink verifies the server.
	bad, _ := NewSyslogSink(SyslogConfig{Network: "tls", Address: addr, Hostname: "ris-node-1", DialTimeout: time.Second})
	if err := bad.Forward(context.Background(), storeRecord()); err == nil {
		t.Fatal("TLS to an untrusted certificate succeeded")
	}
	addr, frames = startTCP(t, serverCfg)
	s, err := NewSyslogSink(SyslogConfig{Network: "tls", Address: addr, Hostname: "ris-node-1", Source: src,
		TLS: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := storeRecord()
	if err := s.Forward(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	checkSyslogMessage(t, recv(t, frames), r)
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, _ := NewSyslogSink(SyslogConfig{Network: "udp", Address: pc.LocalAddr().String(), Hostname: "ris-node-1", Source: src})
	defer s.Close()
	r := storeRecord()
	if err := s.Forward(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkSyslogMessage(t, buf[:n], r) // no octet count over UDP
}

func TestNewSyslogSinkErrors(t *testing.T) {
	for _, c := range []SyslogConfig{{Network: "http", Address: "a:1"}, {Network: "tcp", Address: "nohostport"}} {
		if _, err := NewSyslogSink(c); !errors.Is(err, ErrSyslog) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// flakySink fails its first n calls.
type flakySink struct {
	mu    sync.Mutex
	fails int
	got   []uint64
}

func (f *flakySink) Forward(_ context.Context, r Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return errors.New("repository unavailable")
	}
	f.got = append(f.got, r.Seq)
	return nil
}

func TestSinkFailureIsRetriedAndNeverFailsAppend(t *testing.T) {
	dir := t.TempDir()
	sink := &flakySink{fails: 3}
	tr, err := Open(Config{Dir: dir, Key: testKey, Sinks: []Sink{sink}, Logger: quietLog, NoStartRecord: true,
		Forwarding: ForwarderConfig{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		if err := tr.Append(context.Background(), rec(i)); err != nil {
			t.Fatalf("Append with a failing sink: %v", err)
		}
	}
	stats := tr.forwarders[0]
	if err := tr.Close(); err != nil { // Close delivers what is queued
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if fmt.Sprint(sink.got) != "[1 2 3 4]" {
		t.Fatalf("sink received %v, want [1 2 3 4] in order", sink.got)
	}
	if s := stats.Stats(); s.Sent != 4 || s.Failures != 3 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTrailForwardsToSyslog(t *testing.T) {
	addr, frames := startTCP(t, nil)
	s, _ := NewSyslogSink(SyslogConfig{Network: "tcp", Address: addr, Hostname: "ris-node-1", Source: src})
	tr, err := Open(Config{Dir: t.TempDir(), Key: testKey, Sinks: []Sink{s}, Logger: quietLog, NoStartRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	r := storeRecord()
	if err := tr.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	checkSyslogMessage(t, recv(t, frames), r)
}
