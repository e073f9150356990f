package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/radflow/radflow/internal/audit"
)

const auditUsage = `Usage:
  radflow audit verify [--data DIR] [--audit-key-file FILE] [--expect-seq N] [--expect-hash H]
  radflow audit export --format fhir|dicom [--since TIME] [--data DIR] [--audit-key-file FILE]

verify checks the whole audit trail in DIR/audit (every HMAC, seq without
gaps or reordering, links between segment files) and prints
"ok: N records, last hash H (seq S, ...)", or the first problem with its
file:line and seq and the last good seq and hash; exit status 1 on a
problem. A missing or empty trail next to an existing key is a problem
(every serve start writes an audit:started record): the trail vanished.
Records removed from the end leave a valid shorter chain: note the printed
seq and hash elsewhere (or take them from syslog) and check against them
later with --expect-seq S and/or --expect-hash H (exit 1 when the trail
ends before seq S or its record S has another hash).

export writes the records (verifying as it goes) to stdout: --format fhir
one FHIR R4 AuditEvent JSON per line (NDJSON), --format dicom one DICOM
PS3.15 A.5 audit message XML per line. --since keeps records at or after
TIME (RFC 3339, or a date YYYY-MM-DD in UTC). Exit status 1 if the trail
fails verification (records before the problem have been written).

The HMAC key is read from --audit-key-file (default DIR/keys/audit-hmac.key);
it is never created here.
`

func runAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, auditUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(args[1:], stdout, stderr)
	case "export":
		return runAuditExport(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "radflow audit: unknown subcommand %q\n\n%s", args[0], auditUsage)
	return 2
}

// auditFlags are the options shared by the audit subcommands.
type auditFlags struct {
	data, keyFile string
}

func (a *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.data, "data", "./radflow-data", "data `DIR` of the serve process; the trail is DIR/audit [RADFLOW_DATA]")
	fs.StringVar(&a.keyFile, "audit-key-file", "", "HMAC key `FILE` (hex); default DIR/keys/audit-hmac.key [RADFLOW_AUDIT_KEY_FILE]")
}

// open returns the audit directory and key.
func (a *auditFlags) open() (string, []byte, error) {
	dir, keyFile := audit.Paths(a.data)
	if a.keyFile != "" {
		keyFile = a.keyFile
	}
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		return "", nil, err
	}
	return dir, key, nil
}

func parseAuditFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*flag.FlagSet, *auditFlags, bool) {
	fs := flag.NewFlagSet("audit "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := &auditFlags{}
	a.register(fs)
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprint(stderr, auditUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "radflow audit %s: unexpected arguments %q\n", name, fs.Args())
		return nil, nil, false
	}
	// --data and --audit-key-file fall back to the environment of serve
	// (RADFLOW_DATA, RADFLOW_AUDIT_KEY_FILE); the other flags do not.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, n := range []string{"data", "audit-key-file"} {
		if v, ok := os.LookupEnv(envName(n)); ok && !set[n] {
			_ = fs.Set(n, v)
		}
	}
	return fs, a, true
}

func runAuditVerify(args []string, stdout, stderr io.Writer) int {
	var anchor audit.Anchor
	_, a, ok := parseAuditFlags("verify", args, stderr, func(fs *flag.FlagSet) {
		fs.Uint64Var(&anchor.Seq, "expect-seq", 0, "fail unless the trail still holds record `N` (an anchor noted elsewhere, e.g. from syslog)")
		fs.StringVar(&anchor.Hash, "expect-hash", "", "fail unless a record has hash `H` (64 hex digits; with --expect-seq: record N has it)")
	})
	if !ok {
		return 2
	}
	anchored := anchor != (audit.Anchor{})
	if anchored && anchor.Hash != "" && !reHash.MatchString(anchor.Hash) {
		fmt.Fprintln(stderr, "radflow audit verify: --expect-hash must be 64 hex digits")
		return 2
	}
	dir, key, err := a.open()
	if err != nil {
		fmt.Fprintf(stderr, "radflow audit verify: %v\n", err)
		return 1
	}
	var sum audit.Summary
	if anchored {
		sum, err = audit.VerifyAnchor(dir, key, anchor)
	} else {
		sum, err = audit.Verify(dir, key)
	}
	var p *audit.Problem
	switch {
	case errors.As(err, &p) && p.Kind == audit.ProblemEmpty:
		fmt.Fprintf(stdout, "FAILED: no audit records although the HMAC key exists: %s\n", p.Error())
		return 1
	case errors.As(err, &p):
		fmt.Fprintf(stdout, "FAILED after %d good records: %s\n", sum.Records, p.Error())
		fmt.Fprintf(stdout, "last good record: seq %d, hash %s\n", sum.LastSeq, lastHash(sum.LastHash))
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "radflow audit verify: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d records, last hash %s (seq %d, %d segment files)\n", sum.Records, lastHash(sum.LastHash), sum.LastSeq, sum.Segments)
	if anchored {
		fmt.Fprintf(stdout, "anchor ok: %s present\n", anchorText(anchor))
	}
	return 0
}

var reHash = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func anchorText(a audit.Anchor) string {
	switch {
	case a.Seq != 0 && a.Hash != "":
		return fmt.Sprintf("seq %d with hash %s", a.Seq, strings.ToLower(a.Hash))
	case a.Seq != 0:
		return fmt.Sprintf("seq %d", a.Seq)
	}
	return "hash " + strings.ToLower(a.Hash)
}

func lastHash(h string) string {
	if h == "" {
		return "-"
	}
	return h
}

// parseSince accepts RFC 3339 or YYYY-MM-DD (UTC midnight).
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want RFC 3339 (2025-03-01T12:00:00Z) or a date (2025-03-01)", s)
}

func runAuditExport(args []string, stdout, stderr io.Writer) int {
	var format, since, sourceID, siteID string
	_, a, ok := parseAuditFlags("export", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&format, "format", "", "output `FORMAT`: fhir (AuditEvent NDJSON) or dicom (PS3.15 A.5 XML, one per line) (required)")
		fs.StringVar(&since, "since", "", "export records at or after `TIME` (RFC 3339 or YYYY-MM-DD)")
		fs.StringVar(&sourceID, "audit-source-id", "radflow", "`ID` of this system (AuditSourceID, FHIR source.observer)")
		fs.StringVar(&siteID, "audit-site-id", "", "enterprise site `ID` (AuditEnterpriseSiteID, FHIR source.site)")
	})
	if !ok {
		return 2
	}
	if format != "fhir" && format != "dicom" {
		fmt.Fprintf(stderr, "radflow audit export: --format must be fhir or dicom\n")
		return 2
	}
	from, err := parseSince(since)
	if err != nil {
		fmt.Fprintf(stderr, "radflow audit export: %v\n", err)
		return 2
	}
	dir, key, err := a.open()
	if err != nil {
		fmt.Fprintf(stderr, "radflow audit export: %v\n", err)
		return 1
	}
	src := audit.Source{ID: sourceID, SiteID: siteID}
	w := bufio.NewWriter(stdout)
	n := 0
	_, err = audit.Scan(dir, key, func(r audit.Record) error {
		if r.Time.Before(from) {
			return nil
		}
		var b []byte
		var err error
		if format == "fhir" {
			b, err = audit.FHIRAuditEventJSON(r, src)
		} else {
			b, err = audit.DICOMAuditMessage(r, src)
		}
		if err != nil {
			return err
		}
		if strings.ContainsAny(string(b), "\n") {
			return fmt.Errorf("record %d: encoded form contains a newline", r.Seq)
		}
		w.Write(b)
		n++
		return w.WriteByte('\n')
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintf(stderr, "radflow audit export: %v (after %d records exported)\n", err, n)
		return 1
	}
	fmt.Fprintf(stderr, "exported %d records\n", n)
	return 0
}
