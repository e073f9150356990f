package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// runWorker runs inference jobs only, on the data directory a `radflow
// serve --workers 0` process ingests into (same SQLite file in WAL mode,
// same blobs/). SQLite takes one writer at a time, so this fits a few
// worker processes on the same host; scaling out across hosts needs the
// PostgreSQL store (planned). It opens the same encryption-at-rest keys
// (RADFLOW_KEK, --keyring, or <data>/keys) to read instances and write
// result SRs; it has no listeners, hence no authentication. With
// --destinations it auto-pushes result SRs and audits each push in
// <data>/worker/audit (serve holds the lock on <data>/audit).
func runWorker(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o serviceFlags
	o.register(fs, 2)
	helpWithEnv(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: radflow worker [flags]

Runs inference jobs only (no DICOM or HTTP listener) on the data directory of
a 'radflow serve --workers 0' process on the same host: both open the same
SQLite database (WAL) and blob directory. Results and their SRs are written
as 'radflow serve' writes them. SQLite serialises writers, so this suits a
few processes on one host; scale-out across hosts needs PostgreSQL (planned).
Instances, SRs and PHI columns are encrypted at rest with the same keys as
serve: give it the same keyring (RADFLOW_KEK, --keyring or DATA/keys). It
serves no requests, so it needs no tokens. With --destinations it pushes
result SRs to destinations marked 'auto: [sr]' and records each push in its
own audit trail, DATA/worker/audit (verify it with 'radflow audit verify
--data DATA/worker --audit-key-file DATA/keys/audit-hmac.key').
SIGINT/SIGTERM finish the running jobs (up to --shutdown-timeout) and stop.

Each option is read from, highest first: the flag, the environment variable
shown in brackets, the YAML file of --config (keys are the flag names), the
default.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "radflow worker: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := applyLayers(fs, o.config); err != nil {
		fmt.Fprintln(stderr, "radflow worker:", err)
		return 2
	}
	cfg, err := o.serviceConfig()
	if err != nil {
		fmt.Fprintln(stderr, "radflow worker:", err)
		return 2
	}
	if cfg.Workers == 0 {
		fmt.Fprintln(stderr, "radflow worker: --workers must be at least 1")
		return 2
	}
	cfg.OrphanAge = -1 // the serve process owns the blob sweep
	return runService("worker", cfg, &o, stdout, stderr)
}
