package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
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

// reTokenID is the syntax of a token ID (tok_ + 16 hex digits, or
// tok_admin_env); anything else given to revoke is refused unechoed.
var reTokenID = regexp.MustCompile(`^tok_[A-Za-z0-9_]{1,59}$`)

// runTokens is `radflow tokens create|list|revoke`: service-account API
// tokens in <data>/auth.db, usable while serve runs. create and revoke
// append one admin:tokens record each to <data>/admin/audit (see
// openAdminAudit): subject the OS user, detail operation, token_id,
// granted_roles (create), error_kind (failures) — never the token. The
// trail is opened before anything changes (exit 1, nothing changed, when
// it cannot be); create writes its record after the token exists and
// revokes the token again, without printing it, when the record fails.
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
	if sub == "revoke" && fs.NArg() == 1 {
		if id := fs.Arg(0); !reTokenID.MatchString(id) {
			// Never echo it: it may be the token itself.
			fmt.Fprintln(stderr, "radflow tokens revoke: the argument is not a token ID (tok_...; see radflow tokens list); revoke by ID, never by the token")
			return 2
		}
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		fmt.Fprintf(stderr, "radflow tokens: %v\n", err)
		return 1
	}
	// create and revoke are audited to <data>/admin/audit; the trail is
	// opened (and so known writable) before anything changes.
	var adm *adminAudit
	if sub != "list" {
		var err error
		if adm, err = openAdminAudit(*data, actionAdminTokens, stderr); err != nil {
			fmt.Fprintf(stderr, "radflow tokens %s: nothing changed: %v\n", sub, err)
			return 1
		}
		defer adm.close()
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
		detail := map[string]string{"operation": "create", "granted_roles": strings.Join(roles, ",")}
		tok, info, err := store.Create(ctx, spec)
		if err != nil {
			if aerr := adm.record(detail, err); aerr != nil {
				fmt.Fprintf(stderr, "radflow tokens: %v\n", aerr)
			}
			fmt.Fprintf(stderr, "radflow tokens: %v\n", err)
			return 1
		}
		// The record follows the token (it names the token's ID); when it
		// cannot be written the token is revoked again and never shown.
		detail["token_id"] = info.ID
		if aerr := adm.record(detail, nil); aerr != nil {
			if rerr := store.Revoke(ctx, info.ID); rerr != nil {
				fmt.Fprintf(stderr, "radflow tokens: %v; revoking the unaudited token %s also failed: %v (revoke it with radflow tokens revoke)\n", aerr, info.ID, rerr)
				return 1
			}
			fmt.Fprintf(stderr, "radflow tokens: %v; token %s revoked again and not shown\n", aerr, info.ID)
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
		err := store.Revoke(ctx, fs.Arg(0))
		aerr := adm.record(map[string]string{"operation": "revoke", "token_id": fs.Arg(0)}, err)
		if err != nil {
			fmt.Fprintf(stderr, "radflow tokens: %v\n", err)
			if aerr != nil {
				fmt.Fprintf(stderr, "radflow tokens: %v\n", aerr)
			}
			return 1
		}
		if aerr != nil {
			// The token stays revoked: the safe direction.
			fmt.Fprintf(stderr, "radflow tokens: revoked %s, but %v\n", fs.Arg(0), aerr)
			return 1
		}
		fmt.Fprintf(stdout, "revoked %s\n", fs.Arg(0))
		return 0
	}
}
