package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/keys"
)

// Audit actions of the admin commands (policy vocabulary).
const (
	actionAdminTokens = "admin:tokens"
	actionAdminKeys   = "admin:keys"
)

// adminLockWait bounds how long an admin command waits for another admin
// command that holds the admin trail's lock.
const adminLockWait = 10 * time.Second

// adminAuditDir is the audit trail of the admin commands (radflow tokens,
// radflow keys): <data>/admin/audit. serve holds the lock on <data>/audit
// for its whole life, so these commands keep their own trail, chained with
// the same HMAC key (like the worker's <data>/worker/audit).
func adminAuditDir(data string) string { return filepath.Join(data, "admin", "audit") }

// adminAuditFault, when set (tests only), replaces the error of every
// admin record append, to exercise the paths where the record cannot be
// written after the trail opened.
var adminAuditFault error

// adminAudit appends the records of one admin command.
type adminAudit struct {
	trail   *audit.Trail
	subject string
	action  string
}

// openAdminAudit opens the admin trail of data (key from
// RADFLOW_AUDIT_KEY_FILE, else <data>/keys/audit-hmac.key, created 0600
// when absent as serve does). Opening appends audit:started, so a trail
// that opens is writable: callers open it before changing anything.
// It waits up to adminLockWait for another admin command's lock.
// errors: audit.ErrKey, audit.ErrLocked, os errors, *audit.Problem.
func openAdminAudit(data, action string, stderr io.Writer) (*adminAudit, error) {
	_, keyFile := audit.Paths(data)
	if f := os.Getenv(envName("audit-key-file")); f != "" {
		keyFile = f
	}
	key, err := audit.LoadOrCreateKey(keyFile)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	deadline := time.Now().Add(adminLockWait)
	for {
		tr, err := audit.Open(audit.Config{Dir: adminAuditDir(data), Key: key, Logger: log})
		if err == nil {
			return &adminAudit{trail: tr, subject: osUser(), action: action}, nil
		}
		if !errors.Is(err, audit.ErrLocked) || time.Now().After(deadline) {
			return nil, fmt.Errorf("admin audit trail %s: %w", adminAuditDir(data), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// osUser names the local OS account running the command: its user name,
// or "uid:N" when the name cannot be looked up.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid:" + strconv.Itoa(os.Getuid())
}

// record appends one record: subject the OS user (kind user: a person or
// a job at the host; "system" is radflow itself), protocol cli, resource
// system, detail as given (identifiers only). err, when not nil, makes the
// outcome error and sets detail error_kind.
func (a *adminAudit) record(detail map[string]string, opErr error) error {
	rec := audit.Record{SubjectID: a.subject, SubjectKind: audit.KindUser, Action: a.action,
		Resource: audit.Resource{Type: "system"}, Outcome: audit.OutcomeSuccess, Protocol: audit.ProtocolCLI, Detail: detail}
	if detail == nil {
		rec.Detail = map[string]string{}
	}
	if opErr != nil {
		rec.Outcome = audit.OutcomeError
		rec.Detail["error_kind"] = adminErrorKind(opErr)
	}
	if adminAuditFault != nil {
		return adminAuditFault
	}
	if err := a.trail.Append(context.Background(), rec); err != nil {
		return fmt.Errorf("admin audit record: %w", err)
	}
	return nil
}

func (a *adminAudit) close() error { return a.trail.Close() }

// adminErrorKind maps an operation error to a detail error_kind code.
func adminErrorKind(err error) string {
	switch {
	case errors.Is(err, auth.ErrNotFound):
		return "not_found"
	case errors.Is(err, keys.ErrKEKInUse):
		return "kek_in_use"
	case errors.Is(err, keys.ErrUnknownKEK):
		return "unknown_kek"
	case errors.Is(err, keys.ErrKeyring):
		return "keyring"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, errAuditFailed):
		return "audit_failed"
	}
	return "failed"
}

// errAuditFailed marks an operation undone because its audit record could
// not be written.
var errAuditFailed = errors.New("audit record not written")
