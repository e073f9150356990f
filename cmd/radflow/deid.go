package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/radflow/radflow/internal/deid"
	"github.com/radflow/radflow/internal/dicom"
)

// keepPrivateFlag collects repeated --keep-private values.
type keepPrivateFlag []deid.PrivateTag

func (k *keepPrivateFlag) String() string { return fmt.Sprint(*k) }

func (k *keepPrivateFlag) Set(s string) error {
	for _, part := range strings.Split(s, ";") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		p, err := deid.ParsePrivateTag(part)
		if err != nil {
			return err
		}
		*k = append(*k, p)
	}
	return nil
}

// runDeid implements `radflow deid`: PS3.15 Basic Profile de-identification
// of files or directory trees (mirrored under OUT). One line per input
// file: "ok IN -> OUT", "skip IN: not DICOM" or "FAIL IN: reason" (reasons
// never contain attribute values). Exit status 1 when any file failed, 2 on
// usage errors.
func runDeid(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("deid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "basic", "confidentiality profile (only \"basic\": PS3.15 E.1 Basic Application Level Confidentiality Profile)")
	retainDates := fs.Bool("retain-dates", false, "Retain Longitudinal Temporal Information with Full Dates Option (113106)")
	retainPatient := fs.Bool("retain-patient-characteristics", false, "Retain Patient Characteristics Option (113108)")
	retainDevice := fs.Bool("retain-device-identity", false, "Retain Device Identity Option (113109)")
	clean := fs.Bool("clean-descriptors", false, "Clean Descriptors Option (113105): keep descriptions with identifying values scrubbed")
	var keep keepPrivateFlag
	fs.Var(&keep, "keep-private", "keep a private attribute, CREATOR:EE or CREATOR:GGGG,EE (hex; repeatable)")
	secretFile := fs.String("project-secret-file", "", "file holding the project secret (≥16 bytes) keying UID and Patient ID replacement; without it a random secret is used and UIDs are consistent only within this run")
	allowBurned := fs.Bool("allow-burned-in", false, "de-identify instances with Burned In Annotation YES (pixel data is NOT cleaned) instead of failing them")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: radflow deid [flags] IN OUT\n\nDe-identifies DICOM files with the PS3.15 Annex E Basic Application Level\nConfidentiality Profile. IN and OUT are files, or directories (the tree is\nmirrored). A failed file does not stop the run; exit status 1 when any failed.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	if *profile != "basic" {
		fmt.Fprintf(stderr, "radflow deid: unknown profile %q (only \"basic\")\n", *profile)
		return 2
	}
	opts := deid.Options{
		RetainLongitudinalFullDates:  *retainDates,
		RetainPatientCharacteristics: *retainPatient,
		RetainDeviceIdentity:         *retainDevice,
		CleanDescriptors:             *clean,
		KeepPrivate:                  keep,
		AllowBurnedInAnnotation:      *allowBurned,
	}
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			fmt.Fprintf(stderr, "radflow deid: reading project secret: %v\n", err)
			return 2
		}
		opts.ProjectSecret = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(opts.ProjectSecret) < deid.MinSecretLen {
			fmt.Fprintf(stderr, "radflow deid: %v\n", deid.ErrNoSecret)
			return 2
		}
	} else {
		opts.ProjectSecret = make([]byte, 32)
		_, _ = rand.Read(opts.ProjectSecret)
		fmt.Fprintln(stderr, "radflow deid: no --project-secret-file: using a random secret; new UIDs and Patient IDs will not match other runs")
	}
	in, out := fs.Arg(0), fs.Arg(1)
	st, err := os.Stat(in)
	if err != nil {
		fmt.Fprintf(stderr, "radflow deid: %v\n", err)
		return 2
	}
	failed := false
	for _, src := range expandPaths([]string{in}) {
		dst := out
		if st.IsDir() {
			rel, err := filepath.Rel(in, src)
			if err != nil {
				rel = filepath.Base(src)
			}
			dst = filepath.Join(out, rel)
		} else if ost, err := os.Stat(out); err == nil && ost.IsDir() {
			dst = filepath.Join(out, filepath.Base(src))
		}
		res, err := deidFile(src, dst, opts)
		switch {
		case errors.Is(err, dicom.ErrNotDICOM):
			fmt.Fprintf(stdout, "skip %s: not DICOM\n", src)
		case err != nil:
			failed = true
			fmt.Fprintf(stdout, "FAIL %s: %v\n", src, err)
		default:
			fmt.Fprintf(stdout, "ok   %s -> %s (%d removed, %d replaced)%s\n", src, dst, res.Removed, res.Replaced, warnText(res.Warnings))
		}
	}
	if failed {
		return 1
	}
	return 0
}

func warnText(w []string) string {
	if len(w) == 0 {
		return ""
	}
	return " warning: " + strings.Join(w, "; ")
}

func deidFile(src, dst string, opts deid.Options) (*deid.Result, error) {
	in, err := dicom.ParseFile(src)
	if err != nil {
		return nil, err
	}
	res, err := deid.Deidentify(in, opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(dst, res.Part10, 0o644); err != nil {
		return nil, err
	}
	return res, nil
}
