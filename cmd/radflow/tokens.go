package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/radflow/radflow/internal/auth"
)

// tokenDBName is the API token database inside the data directory.
const tokenDBName = "auth.db"

func defaultDataDir() string {
	if d := os.Getenv("RADFLOW_DATA"); d != "" {
		return d
	}
	return "./radflow-data"
}

// runTokens is `radflow tokens create|list|revoke`: service-account API
// tokens in <data>/auth.db, usable while serve runs.
func runTokens(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "Usage:\n  radflow tokens create --role ROLE [--role ROLE]... [--org ORG] [--name NAME] [--expires DURATION] [--data DIR]\n  radflow tokens list [--data DIR]\n  radflow tokens revoke [--data DIR] ID\n\nRoles: "+strings.Join(auth.KnownRoles(), ", "))
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("tokens "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(); fs.PrintDefaults() }
	data := fs.String("data", defaultDataDir(), "data `DIR` of the serve process (tokens live in DIR/auth.db) [RADFLOW_DATA]")
	var roles stringList
	org, name := new(string), new(string)
	expires := new(time.Duration)
	switch sub {
	case "create":
		fs.Var(&roles, "role", "`ROLE` granted (repeatable): "+strings.Join(auth.KnownRoles(), ", "))
		fs.StringVar(org, "org", "", "`ORGANISATION` the token acts for")
		fs.StringVar(name, "name", "", "label for people, e.g. the service's name (no secrets)")
		fs.DurationVar(expires, "expires", 0, "lifetime, e.g. 2160h (0: never expires)")
	case "list", "revoke":
	case "-h", "--help", "help":
		usage()
		return 0
	default:
		usage()
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx := context.Background()
	if err := os.MkdirAll(*data, 0o700); err != nil {
		fmt.Fprintf(stderr, "radflow tokens: %v\n", err)
		return 1
	}
	store, err := auth.OpenTokenStore(ctx, filepath.Join(*data, tokenDBName))
	if err != nil {
		fmt.Fprintf(stderr, "radflow tokens: %v\n", err)
		return 1
	}
	defer store.Close()
	switch sub {
	case "create":
		if len(roles) == 0 || fs.NArg() > 0 {
			fs.Usage()
			return 2
		}
		for _, r := range roles {
			if !slices.Contains(auth.KnownRoles(), r) {
				fmt.Fprintf(stderr, "radflow tokens: unknown role %q (known: %s)\n", r, strings.Join(auth.KnownRoles(), ", "))
				return 2
			}
		}
		spec := auth.TokenSpec{Name: *name, Roles: roles, Organisation: *org}
		if *expires < 0 {
			fmt.Fprintln(stderr, "radflow tokens: --expires must not be negative")
			return 2
		}
		if *expires > 0 {
			spec.ExpiresAt = time.Now().Add(*expires)
		}
		tok, info, err := store.Create(ctx, spec)
		if err != nil {
			fmt.Fprintf(stderr, "radflow tokens: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "Created token %s (roles %s). It is shown once and only its hash is stored:\n", info.ID, strings.Join(info.Roles, ","))
		fmt.Fprintln(stdout, tok)
		return 0
	case "list":
		list, err := store.List(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "radflow tokens: %v\n", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLES\tORGANISATION\tCREATED\tEXPIRES\tSTATUS")
		now := time.Now()
		for _, t := range list {
			exp, status := "never", "active"
			if !t.ExpiresAt.IsZero() {
				exp = t.ExpiresAt.Format(time.RFC3339)
				if !now.Before(t.ExpiresAt) {
					status = "expired"
				}
			}
			if !t.RevokedAt.IsZero() {
				status = "revoked " + t.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Roles, ","), t.Organisation, t.CreatedAt.Format(time.RFC3339), exp, status)
		}
		tw.Flush()
		return 0
	default: // revoke
		if fs.NArg() != 1 {
			fs.Usage()
			return 2
		}
		if err := store.Revoke(ctx, fs.Arg(0)); err != nil {
			fmt.Fprintf(stderr, "radflow tokens: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "revoked %s\n", fs.Arg(0))
		return 0
	}
}
