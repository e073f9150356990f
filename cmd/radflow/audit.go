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
	"github.com/radflow/radflow/internal/service"
)

const auditUsage = `Usage:
  radflow audit verify [--data DIR] [--trail main|admin|worker] [--audit-key-file FILE] [--expect-seq N] [--expect-hash H]
  radflow audit export --format fhir|dicom [--since TIME] [--after-seq N] [--data DIR] [--trail main|admin|worker] [--audit-key-file FILE]

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

Without --trail, verify then checks, when present, the trail of the admin
commands (radflow tokens, radflow keys) in DIR/admin/audit and the
worker's in DIR/worker/audit, each reported on a line starting with
"admin trail DIR: " or "worker trail DIR: " (exit 1 if any fails);
--expect-seq/--expect-hash apply to the main trail. --trail selects one
trail (then the anchor applies to it).

export writes the records (verifying as it goes) to stdout: --format fhir
one FHIR R4 AuditEvent JSON per line (NDJSON), --format dicom one DICOM
PS3.15 A.5 audit message XML per line. --since keeps records whose event
time is at or after TIME (RFC 3339, or a date YYYY-MM-DD in UTC);
--after-seq keeps records after seq N. stderr gets the count and the last
seq of the trail: pass it as --after-seq to the next incremental export
(records of stored instances join the trail moments after their event,
after records of later events, so --since alone can miss them; records
still staged in the database are not in the trail yet). Exit status 1 if
the trail fails verification (records before the problem have been
written).

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
	data, keyFile, trail string
}

func (a *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.data, "data", "./radflow-data", "data `DIR` of the serve process; the trail is DIR/audit [RADFLOW_DATA]")
	fs.StringVar(&a.keyFile, "audit-key-file", "", "HMAC key `FILE` (hex); default DIR/keys/audit-hmac.key [RADFLOW_AUDIT_KEY_FILE]")
	fs.StringVar(&a.trail, "trail", "", "`TRAIL` to read: main (DIR/audit), admin (DIR/admin/audit) or worker (DIR/worker/audit); default main (verify: main, then admin and worker when present)")
}

// open returns the audit directory of the selected trail and the key.
func (a *auditFlags) open() (string, []byte, error) {
	_, keyFile := audit.Paths(a.data)
	dir := trailDir(a.data, a.trail)
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
	switch a.trail {
	case "", "main", "admin", "worker":
	default:
		fmt.Fprintf(stderr, "radflow audit %s: --trail must be main, admin or worker\n", name)
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
	rc := verifyTrail(dir, key, anchor, "", stdout, stderr)
	if a.trail != "" {
		return rc
	}
	// Without --trail: also the trails of the admin commands and the
	// worker, each when present (the anchor belongs to the main trail).
	for _, name := range []string{"admin", "worker"} {
		d := trailDir(a.data, name)
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		if r := verifyTrail(d, key, audit.Anchor{}, name+" trail "+d+": ", stdout, stderr); r != 0 {
			rc = r
		}
	}
	return rc
}

// verifyTrail verifies one trail and prints its result lines, each
// prefixed with prefix; it returns the exit status (0 ok, 1 problem).
func verifyTrail(dir string, key []byte, anchor audit.Anchor, prefix string, stdout, stderr io.Writer) int {
	anchored := anchor != (audit.Anchor{})
	var sum audit.Summary
	var err error
	if anchored {
		sum, err = audit.VerifyAnchor(dir, key, anchor)
	} else {
		sum, err = audit.Verify(dir, key)
	}
	var p *audit.Problem
	switch {
	case errors.As(err, &p) && p.Kind == audit.ProblemEmpty:
		fmt.Fprintf(stdout, "%sFAILED: no audit records although the HMAC key exists: %s\n", prefix, p.Error())
		return 1
	case errors.As(err, &p):
		fmt.Fprintf(stdout, "%sFAILED after %d good records: %s\n", prefix, sum.Records, p.Error())
		fmt.Fprintf(stdout, "%slast good record: seq %d, hash %s\n", prefix, sum.LastSeq, lastHash(sum.LastHash))
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "radflow audit verify: %s%v\n", prefix, err)
		return 1
	}
	fmt.Fprintf(stdout, "%sok: %d records, last hash %s (seq %d, %d segment files)\n", prefix, sum.Records, lastHash(sum.LastHash), sum.LastSeq, sum.Segments)
	if anchored {
		fmt.Fprintf(stdout, "%sanchor ok: %s present\n", prefix, anchorText(anchor))
	}
	return 0
}

// trailDir is the directory of a named trail of the data directory data:
// main (<data>/audit, serve), admin (<data>/admin/audit, radflow tokens
// and radflow keys) or worker (<data>/worker/audit, radflow worker).
func trailDir(data, name string) string {
	switch name {
	case "admin":
		return adminAuditDir(data)
	case "worker":
		return service.WorkerAuditDir(data)
	}
	dir, _ := audit.Paths(data)
	return dir
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
	var afterSeq uint64
	_, a, ok := parseAuditFlags("export", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&format, "format", "", "output `FORMAT`: fhir (AuditEvent NDJSON) or dicom (PS3.15 A.5 XML, one per line) (required)")
		fs.StringVar(&since, "since", "", "export records whose event time is at or after `TIME` (RFC 3339 or YYYY-MM-DD)")
		fs.Uint64Var(&afterSeq, "after-seq", 0, "export records after seq `N` (for incremental exports: the last seq the previous export printed; records staged with instance rows join the chain up to moments after later events, so --since alone can miss them)")
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
	var last uint64
	_, err = audit.Scan(dir, key, func(r audit.Record) error {
		last = r.Seq
		if r.Time.Before(from) || r.Seq <= afterSeq {
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
	fmt.Fprintf(stderr, "exported %d records, last seq %d\n", n, last)
	return 0
}
