package policy

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/radflow/radflow/policies"
)

var quiet = slog.New(slog.DiscardHandler)

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// request: subject of org-a asking about a study of org-a.
func request(roles []string, action string) Input {
	return Input{
		Subject:  Subject{ID: "user-1", Kind: "user", Roles: roles, Organisation: "org-a"},
		Action:   action,
		Resource: Resource{Type: "study", StudyInstanceUID: "1.2.840.99.1", Organisation: "org-a", Attributes: map[string]string{"modality": "CT"}},
		Context:  RequestContext{ClientAddress: "192.0.2.10"},
	}
}

var allActions = []string{
	"study:read", "instance:store", "result:read", "model:read", "model:promote",
	"audit:read", "audit:verify", "metrics:read", "health:read", "export", "deid",
	"admin:keys", "admin:tokens", "unknown:action",
}

// The role × action matrix of docs/security.md ("The matrix"), stated independently
// of the Rego so that a policy edit that changes it fails here too.
var matrix = map[string][]string{
	"radiologist":         {"study:read", "result:read", "model:read", "export", "deid", "health:read"},
	"referring_physician": {"study:read", "result:read", "health:read"},
	"technologist":        {"instance:store", "study:read", "health:read"},
	"ai_service":          {"instance:store", "study:read", "result:read", "health:read"},
	"admin":               {"model:read", "model:promote", "metrics:read", "deid", "admin:keys", "admin:tokens", "health:read"},
	"auditor":             {"audit:read", "audit:verify", "health:read"},
	"janitor":             {"health:read"}, // unknown role: grants nothing
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestDecideMatrix(t *testing.T) {
	e := newEngine(t, Config{})
	ctx := context.Background()
	for role, allowed := range matrix {
		for _, action := range allActions {
			want := slices.Contains(allowed, action)
			d, err := e.Decide(ctx, request([]string{role}, action))
			if err != nil {
				t.Fatalf("%s %s: %v", role, action, err)
			}
			if d.Allow != want || d.BreakGlass {
				t.Errorf("%s %s: allow=%v break_glass=%v, want allow=%v (reasons %q)", role, action, d.Allow, d.BreakGlass, want, d.Reasons)
			}
			if len(d.Reasons) == 0 || !uuidV4.MatchString(d.ID) || d.Policy != e.PolicyDigest() {
				t.Errorf("%s %s: reasons %q id %q policy %q", role, action, d.Reasons, d.ID, d.Policy)
			}
		}
	}
	d, _ := e.Decide(ctx, request([]string{"radiologist"}, "study:read"))
	if want := []string{"role radiologist grants study:read"}; !slices.Equal(d.Reasons, want) {
		t.Errorf("reasons %q, want %q", d.Reasons, want)
	}
	d, _ = e.Decide(ctx, request([]string{"janitor"}, "study:read"))
	if want := []string{"no role of the subject grants study:read"}; d.Allow || !slices.Equal(d.Reasons, want) {
		t.Errorf("unknown role: allow=%v reasons %q, want deny %q", d.Allow, d.Reasons, want)
	}
}

func TestDecideScenarios(t *testing.T) {
	e := newEngine(t, Config{})
	otherOrg := func(in Input) Input { in.Resource.Organisation = "org-b"; return in }
	glass := func(reason string) func(Input) Input {
		return func(in Input) Input { in.Context.BreakGlass, in.Context.BreakGlassReason = true, reason; return in }
	}
	purpose := func(p string) func(Input) Input {
		return func(in Input) Input { in.Context.PurposeOfUse = p; return in }
	}
	cases := []struct {
		name       string
		in         Input
		allow, bg  bool
		wantReason string
	}{
		{"referring same organisation", request([]string{"referring_physician"}, "study:read"), true, false, "role referring_physician grants study:read within its organisation"},
		{"referring other organisation", otherOrg(request([]string{"referring_physician"}, "study:read")), false, false, "study:read is limited to the subject's organisation"},
		{"referring other organisation result", otherOrg(request([]string{"referring_physician"}, "result:read")), false, false, "result:read is limited to the subject's organisation"},
		{"referring unknown resource organisation", func() Input {
			in := request([]string{"referring_physician"}, "study:read")
			in.Resource.Organisation = ""
			return in
		}(), false, false, "study:read is limited to the subject's organisation"},
		{"radiologist other organisation", otherOrg(request([]string{"radiologist"}, "study:read")), true, false, "role radiologist grants study:read"},
		{"break-glass referring other organisation", glass("stroke alert")(otherOrg(request([]string{"referring_physician"}, "study:read"))), true, true, "break-glass by role referring_physician for study:read"},
		{"break-glass technologist result", glass("trauma call")(request([]string{"technologist"}, "result:read")), true, true, "break-glass by role technologist for result:read"},
		{"break-glass without reason", glass("")(otherOrg(request([]string{"referring_physician"}, "study:read"))), false, false, "break-glass requires a non-empty reason"},
		{"break-glass blank reason", glass(" \t ")(request([]string{"technologist"}, "result:read")), false, false, "break-glass requires a non-empty reason"},
		{"break-glass admin", glass("curious")(request([]string{"admin"}, "study:read")), false, false, "break-glass is limited to clinical roles reading studies or results (study:read)"},
		{"break-glass store", glass("urgent")(request([]string{"referring_physician"}, "instance:store")), false, false, "break-glass is limited to clinical roles reading studies or results (instance:store)"},
		{"break-glass not needed", glass("habit")(request([]string{"radiologist"}, "study:read")), true, false, "role radiologist grants study:read"},
		{"break-glass research purpose", purpose("HRESCH")(glass("x")(request([]string{"technologist"}, "result:read"))), false, false, "break-glass does not permit purpose of use HRESCH"},
		{"break-glass emergency purpose", purpose("ETREAT")(glass("x")(request([]string{"technologist"}, "result:read"))), true, true, "break-glass by role technologist for result:read"},
		{"purpose treatment", purpose("TREAT")(request([]string{"radiologist"}, "result:read")), true, false, "role radiologist grants result:read"},
		{"purpose research identified read", purpose("HRESCH")(request([]string{"radiologist"}, "study:read")), false, false, "purpose of use HRESCH does not permit identified PHI access"},
		{"purpose research deid", purpose("HRESCH")(request([]string{"radiologist"}, "deid")), true, false, "role radiologist grants deid"},
		{"missing subject", Input{Action: "study:read"}, false, false, "subject is not authenticated"},
		{"anonymous health", Input{Subject: Subject{Kind: "anonymous"}, Action: "health:read"}, true, false, "health:read is open to every subject"},
		{"anonymous metrics", Input{Subject: Subject{Kind: "anonymous"}, Action: "metrics:read"}, false, false, "subject is not authenticated"},
		{"roles without id", Input{Subject: Subject{Kind: "user", Roles: []string{"admin"}}, Action: "admin:keys"}, false, false, "subject is not authenticated"},
		{"AE title ai_service store", Input{Subject: Subject{ID: "CT_SCANNER_1", Kind: "ae", Roles: []string{"ai_service"}}, Action: "instance:store", Resource: Resource{Type: "instance"}}, true, false, "role ai_service grants instance:store"},
		{"two roles", request([]string{"auditor", "admin"}, "model:promote"), true, false, "role admin grants model:promote"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), c.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != c.allow || d.BreakGlass != c.bg || !slices.Contains(d.Reasons, c.wantReason) {
				t.Errorf("allow=%v break_glass=%v reasons=%q, want allow=%v break_glass=%v with reason %q", d.Allow, d.BreakGlass, d.Reasons, c.allow, c.bg, c.wantReason)
			}
			for _, r := range d.Reasons {
				for _, secret := range []string{"1.2.840.99.1", "user-1", "org-a", "org-b", "192.0.2.10", "stroke", "trauma", "curious"} {
					if strings.Contains(r, secret) {
						t.Errorf("reason %q contains %q", r, secret)
					}
				}
			}
		})
	}
}

func TestDecideInvalidInput(t *testing.T) {
	e := newEngine(t, Config{})
	long := strings.Repeat("x", MaxStringBytes+1)
	cases := map[string]func(*Input){
		"empty action":       func(in *Input) { in.Action = "" },
		"action upper case":  func(in *Input) { in.Action = "Study:Read" },
		"action with space":  func(in *Input) { in.Action = "study: read" },
		"action too long":    func(in *Input) { in.Action = strings.Repeat("a", MaxActionBytes+1) },
		"too many roles":     func(in *Input) { in.Subject.Roles = make([]string, MaxRoles+1) },
		"long subject id":    func(in *Input) { in.Subject.ID = long },
		"long reason":        func(in *Input) { in.Context.BreakGlassReason = "patient Jane Doe " + long },
		"invalid UTF-8 role": func(in *Input) { in.Subject.Roles = []string{"radiologist", "\xff"} },
		"bad time":           func(in *Input) { in.Context.Time = "yesterday" },
		"long attribute":     func(in *Input) { in.Resource.Attributes = map[string]string{"modality": long} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			in := request([]string{"radiologist"}, "study:read")
			mutate(&in)
			d, err := e.Decide(context.Background(), in)
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("err = %v, want ErrInvalidInput", err)
			}
			if d.Allow || len(d.Reasons) != 1 || !strings.HasPrefix(d.Reasons[0], "invalid input: ") || !uuidV4.MatchString(d.ID) {
				t.Errorf("decision %+v, want a deny with an invalid input reason and an ID", d)
			}
			if strings.Contains(err.Error(), "Jane") || strings.Contains(err.Error(), "xxxx") {
				t.Errorf("error %q echoes the field's content", err)
			}
		})
	}
}

// Input's JSON form (what an operator sees in docs and in `opa eval`) and the
// value handed to the policy must be the same document.
func TestInputValueMatchesJSON(t *testing.T) {
	in := request([]string{"radiologist", "admin"}, "study:read")
	in.Resource.SOPInstanceUID = "1.2.840.99.1.2"
	in.Context = RequestContext{PurposeOfUse: "TREAT", BreakGlass: true, BreakGlassReason: "r", Time: "2026-01-02T03:04:05Z", ClientAddress: "192.0.2.10"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ast.ValueFromReader(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if got := in.value(); got.Compare(want) != 0 {
		t.Errorf("value %v\nJSON  %v", got, want)
	}
	// Nil roles and attributes are empty collections, not null.
	empty := Input{Action: "health:read"}
	if got := empty.value().String(); !strings.Contains(got, `"roles": []`) || !strings.Contains(got, `"attributes": {}`) {
		t.Errorf("zero Input value %s", got)
	}
}

func TestDecideFillsTime(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	dir := policyDir(t, `package radflow.authz
decision := {"allow": input.context.time == "2026-03-04T05:06:07Z", "break_glass": false, "reasons": [input.context.time]}
`)
	e := newEngine(t, Config{Dir: dir, PollInterval: -1, Now: func() time.Time { return at }})
	d, err := e.Decide(context.Background(), Input{Action: "health:read"})
	if err != nil || !d.Allow {
		t.Errorf("decision %+v err %v, want allow (time filled from Now)", d, err)
	}
}

func TestDecisionIDsDistinct(t *testing.T) {
	e := newEngine(t, Config{})
	seen := map[string]bool{}
	for range 1000 {
		d, _ := e.Decide(context.Background(), request([]string{"radiologist"}, "study:read"))
		if seen[d.ID] || !uuidV4.MatchString(d.ID) {
			t.Fatalf("decision ID %q repeated or not a v4 UUID", d.ID)
		}
		seen[d.ID] = true
	}
}

// A policy whose output is not a well-formed decision, is undefined, or
// fails to evaluate must deny with an error.
func TestDecideDefaultDeny(t *testing.T) {
	dir := policyDir(t, `package radflow.authz

decision := {"allow": true, "break_glass": false, "reasons": ["ok"]} if input.action == "health:read"
decision := "yes" if input.action == "x:string"
decision := {"allow": "true", "break_glass": false, "reasons": ["r"]} if input.action == "x:allow-string"
decision := {"allow": true, "reasons": ["r"]} if input.action == "x:no-break-glass"
decision := {"allow": true, "break_glass": false, "reasons": []} if input.action == "x:no-reasons"
decision := {"allow": true, "break_glass": false, "reasons": [1]} if input.action == "x:number-reason"
decision := {"allow": false, "break_glass": true, "reasons": ["r"]} if input.action == "x:glass-deny"
decision := {"allow": true, "break_glass": false, "reasons": ["a"]} if input.action == "x:conflict"
decision := {"allow": false, "break_glass": false, "reasons": ["b"]} if input.action == "x:conflict"
`)
	for _, ev := range []string{EvaluatorWasm, EvaluatorTopdown} {
		t.Run(ev, func(t *testing.T) {
			testDefaultDeny(t, newEngine(t, Config{Dir: dir, PollInterval: -1, Evaluator: ev}))
		})
	}
}

// testDefaultDeny: every malformed or failed decision is a deny with the
// specific error, on either evaluator.
func testDefaultDeny(t *testing.T, e *Engine) {
	cases := map[string]error{
		"x:string":         ErrMalformedDecision,
		"x:allow-string":   ErrMalformedDecision,
		"x:no-break-glass": ErrMalformedDecision,
		"x:no-reasons":     ErrMalformedDecision,
		"x:number-reason":  ErrMalformedDecision,
		"x:glass-deny":     ErrMalformedDecision,
		"x:undefined":      ErrUndefined,
		"x:conflict":       ErrEvaluation,
	}
	for action, want := range cases {
		d, err := e.Decide(context.Background(), Input{Subject: Subject{ID: "u", Kind: "user"}, Action: action})
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", action, err, want)
		}
		if d.Allow || d.BreakGlass || len(d.Reasons) != 1 || !strings.HasSuffix(d.Reasons[0], "denied by default") || d.ID == "" {
			t.Errorf("%s: decision %+v, want default deny", action, d)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := e.Decide(ctx, Input{Action: "health:read"}); !errors.Is(err, ErrEvaluation) || d.Allow {
		t.Errorf("cancelled context: decision %+v err %v, want deny with ErrEvaluation", d, err)
	}
	if d, err := e.Decide(context.Background(), Input{Action: "health:read"}); err != nil || !d.Allow {
		t.Errorf("health:read: %+v %v, want allow", d, err)
	}
}

func TestNewErrors(t *testing.T) {
	cases := map[string]struct {
		files map[string]string
		want  error
	}{
		"empty directory":        {map[string]string{"README": "x", "authz_test.rego": "package x"}, ErrNoPolicy},
		"syntax error":           {map[string]string{"authz.rego": "package radflow.authz\ndecision := {"}, ErrCompile},
		"v0 syntax":              {map[string]string{"authz.rego": "package radflow.authz\nallow { true }"}, ErrCompile},
		"wrong package":          {map[string]string{"authz.rego": "package other\ndecision := {\"allow\": true, \"break_glass\": false, \"reasons\": [\"x\"]}"}, ErrPolicyCheck},
		"malformed for a probe":  {map[string]string{"authz.rego": "package radflow.authz\ndecision := true"}, ErrPolicyCheck},
		"missing dir is no file": {nil, fs.ErrNotExist},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "p")
			if c.files != nil {
				writeFiles(t, dir, c.files)
			}
			e, err := New(Config{Dir: dir, Logger: quiet})
			if !errors.Is(err, c.want) || e != nil {
				t.Errorf("New: %v, %v; want error %v", e, err, c.want)
			}
		})
	}
}

func TestReloadKeepsOldPolicyOnSyntaxError(t *testing.T) {
	dir := policyDir(t, "")
	e := newEngine(t, Config{Dir: dir, PollInterval: -1})
	ctx := context.Background()
	before := e.PolicyDigest()
	writeFiles(t, dir, map[string]string{"extra.rego": "package radflow.authz\n\ngrants := {"})
	err := e.Reload(ctx)
	if !errors.Is(err, ErrCompile) || !errors.Is(e.LastReloadError(), ErrCompile) {
		t.Fatalf("Reload = %v, LastReloadError = %v; want ErrCompile", err, e.LastReloadError())
	}
	if !strings.Contains(err.Error(), "extra.rego:3") {
		t.Errorf("compile error %q does not name the file and line", err)
	}
	if e.PolicyDigest() != before {
		t.Errorf("digest changed to %s after a failed reload", e.PolicyDigest())
	}
	d, err := e.Decide(ctx, request([]string{"radiologist"}, "study:read"))
	if err != nil || !d.Allow || d.Policy != before {
		t.Errorf("after failed reload: %+v %v, want allow by the old policy", d, err)
	}
	// Removing the broken file restores the original sources: no error.
	if err := os.Remove(filepath.Join(dir, "extra.rego")); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); err != nil || e.LastReloadError() != nil {
		t.Errorf("Reload after fix = %v, LastReloadError = %v", err, e.LastReloadError())
	}
}

func TestReloadPicksUpChangedRule(t *testing.T) {
	src := authzSource(t)
	dir := policyDir(t, src)
	e := newEngine(t, Config{Dir: dir, PollInterval: -1})
	ctx := context.Background()
	in := request([]string{"auditor"}, "metrics:read")
	if d, _ := e.Decide(ctx, in); d.Allow {
		t.Fatal("auditor may read metrics before the change")
	}
	before := e.PolicyDigest()
	changed := strings.Replace(src, `"auditor": {"audit:read", "audit:verify"}`, `"auditor": {"audit:read", "audit:verify", "metrics:read"}`, 1)
	if changed == src {
		t.Fatal("auditor grant not found in authz.rego")
	}
	writeFiles(t, dir, map[string]string{"authz.rego": changed})
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(ctx, in)
	if err != nil || !d.Allow || d.Policy == before || d.Policy != e.PolicyDigest() {
		t.Errorf("after reload: %+v %v, want allow under a new digest", d, err)
	}
}

// The watcher notices a changed file on its own and logs nothing twice for
// the same broken file.
func TestWatcherReloads(t *testing.T) {
	src := authzSource(t)
	dir := policyDir(t, src)
	e := newEngine(t, Config{Dir: dir, PollInterval: 10 * time.Millisecond})
	in := request([]string{"auditor"}, "metrics:read")
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("watcher did not %s within 10 s", what)
			}
		}
	}
	writeFiles(t, dir, map[string]string{"broken.rego": "package radflow.authz\nx := "})
	waitFor("report the broken file", func() bool { return errors.Is(e.LastReloadError(), ErrCompile) })
	os.Remove(filepath.Join(dir, "broken.rego"))
	writeFiles(t, dir, map[string]string{"authz.rego": strings.Replace(src, `"auditor": {"audit:read", "audit:verify"}`, `"auditor": {"audit:read", "audit:verify", "metrics:read"}`, 1)})
	waitFor("load the changed rule", func() bool {
		d, _ := e.Decide(context.Background(), in)
		return d.Allow && e.LastReloadError() == nil
	})
}

// Decide is safe while reloads swap the query (run with -race).
func TestConcurrentDecideAndReload(t *testing.T) {
	src := authzSource(t)
	dir := policyDir(t, src)
	e := newEngine(t, Config{Dir: dir, PollInterval: -1})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, err := e.Decide(context.Background(), request([]string{"radiologist"}, "study:read"))
				if err != nil || !d.Allow {
					t.Errorf("decision %+v err %v during reload", d, err)
					return
				}
			}
		}()
	}
	for i := range 5 {
		writeFiles(t, dir, map[string]string{"authz.rego": src + strings.Repeat("\n", i+1)})
		if err := e.Reload(context.Background()); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

func authzSource(t testing.TB) string {
	t.Helper()
	b, err := fs.ReadFile(policies.FS, "authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// policyDir makes a policy directory holding src as authz.rego (the shipped
// policy when src is "").
func policyDir(t testing.TB, src string) string {
	t.Helper()
	if src == "" {
		src = authzSource(t)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"authz.rego": src})
	return dir
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}
