package policy

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestDefaultEvaluatorIsWasm(t *testing.T) {
	if got := newEngine(t, Config{}).Evaluator(); got != EvaluatorWasm {
		t.Fatalf("Evaluator() = %q, want %q for the shipped policy", got, EvaluatorWasm)
	}
	if got := newEngine(t, Config{Evaluator: EvaluatorTopdown}).Evaluator(); got != EvaluatorTopdown {
		t.Fatalf("Evaluator() = %q, want %q when asked for", got, EvaluatorTopdown)
	}
	if _, err := New(Config{Evaluator: "jit", Logger: quiet}); err == nil {
		t.Fatal("New accepted an unknown evaluator")
	}
}

// TestWasmMatchesTopdown: the Wasm module decides exactly what OPA's
// interpreter decides on the shipped policy — allow, break-glass flag and
// every reason — over the full role × action × break-glass × organisation
// product and 20,000 seeded random inputs across every input field the
// policy reads.
func TestWasmMatchesTopdown(t *testing.T) {
	w := newEngine(t, Config{Evaluator: EvaluatorWasm})
	td := newEngine(t, Config{Evaluator: EvaluatorTopdown})
	ctx := context.Background()
	var allows, denies, glass int
	check := func(in Input) {
		t.Helper()
		a, errA := w.Decide(ctx, in)
		b, errB := td.Decide(ctx, in)
		if errA != nil || errB != nil {
			t.Fatalf("%+v: errors wasm %v, topdown %v", in, errA, errB)
		}
		if a.Allow != b.Allow || a.BreakGlass != b.BreakGlass || !slices.Equal(a.Reasons, b.Reasons) {
			t.Fatalf("%+v:\n wasm    %v %v %q\n topdown %v %v %q", in, a.Allow, a.BreakGlass, a.Reasons, b.Allow, b.BreakGlass, b.Reasons)
		}
		switch {
		case a.BreakGlass:
			glass++
		case a.Allow:
			allows++
		default:
			denies++
		}
	}
	roleSets := [][]string{nil, {}, {""}, {"ADMIN"}, {"radiologist", "admin"}, {"technologist", "auditor"}, {"referring_physician", "ai_service"}}
	for r := range matrix {
		roleSets = append(roleSets, []string{r})
	}
	for _, roles := range roleSets {
		for _, action := range allActions {
			for _, org := range []string{"org-a", "org-b", ""} {
				for _, bg := range []bool{false, true} {
					in := request(roles, action)
					in.Resource.Organisation = org
					in.Context.BreakGlass = bg
					if bg {
						in.Context.BreakGlassReason = "stroke alert"
					}
					check(in)
				}
			}
		}
	}
	pick := func(r *rand.Rand, xs []string) string { return xs[r.IntN(len(xs))] }
	r := rand.New(rand.NewPCG(7, 1))
	roles := []string{"radiologist", "referring_physician", "technologist", "ai_service", "admin", "auditor", "janitor", "", "Radiologist"}
	for range 20000 {
		var in Input
		in.Subject.ID = pick(r, []string{"user-1", "", " "})
		in.Subject.Kind = pick(r, []string{"user", "service", "ae", "anonymous", "", "robot"})
		for range r.IntN(3) {
			in.Subject.Roles = append(in.Subject.Roles, pick(r, roles))
		}
		in.Subject.Organisation = pick(r, []string{"org-a", "org-b", "", " "})
		in.Action = pick(r, allActions)
		in.Resource = Resource{Type: pick(r, []string{"study", "result", "system", ""}), StudyInstanceUID: "1.2.3",
			Organisation: pick(r, []string{"org-a", "org-b", "", " "})}
		if r.IntN(2) == 0 {
			in.Resource.Attributes = map[string]string{"modality": "CR", "<&>": "\"quoted\" é\t"}
		}
		in.Context = RequestContext{
			PurposeOfUse:     pick(r, []string{"", "TREAT", " etreat ", "HRESCH", "hoperat", "ETREAT"}),
			BreakGlass:       r.IntN(3) == 0,
			BreakGlassReason: pick(r, []string{"", "stroke alert", "  ", "ünïcode ☃"}),
			ClientAddress:    "192.0.2.10",
		}
		check(in)
	}
	// The comparison means something only if every kind of outcome occurred.
	if allows < 1000 || denies < 1000 || glass < 20 {
		t.Fatalf("outcomes: %d allows, %d denies, %d break-glass; the inputs do not exercise the policy", allows, denies, glass)
	}
	t.Logf("%d allows, %d denies, %d break-glass: identical", allows, denies, glass)
}

// A policy that needs a host builtin (sprintf) is evaluated by topdown
// under the default, and refused when Wasm is required.
func TestWasmFallsBackForHostBuiltins(t *testing.T) {
	dir := policyDir(t, `package radflow.authz

decision := {"allow": true, "break_glass": false, "reasons": [sprintf("%s is open", [input.action])]} if input.action == "health:read"
`)
	e := newEngine(t, Config{Dir: dir, PollInterval: -1})
	if got := e.Evaluator(); got != EvaluatorTopdown {
		t.Fatalf("Evaluator() = %q, want topdown for a policy calling sprintf", got)
	}
	d, err := e.Decide(context.Background(), Input{Action: "health:read"})
	if err != nil || !d.Allow || !slices.Equal(d.Reasons, []string{"health:read is open"}) {
		t.Fatalf("decision %+v, %v", d, err)
	}
	if _, err := New(Config{Dir: dir, PollInterval: -1, Evaluator: EvaluatorWasm, Logger: quiet}); !errors.Is(err, ErrWasmHostBuiltins) {
		t.Fatalf("New with Evaluator wasm: %v, want ErrWasmHostBuiltins", err)
	}
}

// A policy error inside the module (conflicting complete rule values ends
// in opa_abort) denies with ErrEvaluation, and the trapped instance is
// replaced: later decisions, concurrent ones included, still work.
func TestWasmAbortReplacesInstance(t *testing.T) {
	dir := policyDir(t, `package radflow.authz

decision := {"allow": true, "break_glass": false, "reasons": ["ok"]} if input.action != "x:conflict"
decision := {"allow": true, "break_glass": false, "reasons": ["a"]} if input.action == "x:conflict"
decision := {"allow": false, "break_glass": false, "reasons": ["b"]} if input.action == "x:conflict"
`)
	e := newEngine(t, Config{Dir: dir, PollInterval: -1, Evaluator: EvaluatorWasm})
	ctx := context.Background()
	done := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 200 {
				action := "health:read"
				if (i+g)%3 == 0 {
					action = "x:conflict"
				}
				d, err := e.Decide(ctx, Input{Action: action})
				if action == "x:conflict" && (!errors.Is(err, ErrEvaluation) || d.Allow) {
					done <- errors.New("conflict: " + d.Reasons[0])
					return
				}
				if action != "x:conflict" && (err != nil || !d.Allow || d.Reasons[0] != "ok") {
					done <- errors.New("health:read denied after an abort")
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	p := e.cur.Load().wasm
	if n := p.created.Load(); n < 1 || n > p.limit {
		t.Fatalf("%d live instances, want 1..%d", n, p.limit)
	}
}
