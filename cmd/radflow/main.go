// Command radflow is the radflow binary: one executable whose subcommands
// wire the internal packages together. It holds no domain logic of its own.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/radflow/radflow/internal/timerslack" // sets the timer slack when the binary loads
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"inspect", "print transfer syntax, image attributes and pixel statistics of DICOM files", runInspect},
		{"infer", "run the matching AI models on DICOM files or directories", runInfer},
		{"deid", "de-identify DICOM files (PS3.15 Basic Application Level Confidentiality Profile)", runDeid},
		{"eval", "score a model on a labelled folder (accuracy, sensitivity, ROC AUC, ...)", runEval},
		{"serve", "run the DICOM (C-STORE) and DICOMweb service with inference workers", runServe},
		{"worker", "run only inference workers on the data directory of a serve process", runWorker},
		{"audit", "verify the audit trail or export it as FHIR AuditEvent / DICOM audit messages", runAudit},
		{"keys", "rotate, re-wrap, retire and list the key-encryption keys of encryption at rest", runKeys},
		{"certs", "write a development CA, server and client certificate for HTTPS and DICOM TLS", runCerts},
		{"tokens", "create, list and revoke service-account API tokens", runTokens},
		{"version", "print the version", func([]string, io.Writer, io.Writer) int { fmt.Println("radflow", version); return 0 }},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "radflow %s — medical imaging AI platform\n\nUsage: radflow <command> [flags] [args]\n\nCommands:\n", version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'radflow <command> --help' for a command's flags.\n")
}

func main() {
	if _, err := timerslack.Applied(); err != nil {
		fmt.Fprintf(os.Stderr, "radflow: %v\n", err)
		os.Exit(2)
	}
	stop := startProfiling(os.Stderr)
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "radflow: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
