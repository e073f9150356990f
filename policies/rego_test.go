package policies_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/radflow/radflow/policies"
)

// TestRegoUnitTests runs every test_ rule of the embedded *_test.rego files
// with OPA's tester; a failing or erroring Rego test (or a failing case of a
// parameterised one) fails this test.
func TestRegoUnitTests(t *testing.T) {
	names, err := fs.Glob(policies.FS, "*.rego")
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string]*ast.Module{}
	for _, name := range names {
		src, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		mods[name] = m
	}
	tm, ok := mods["authz_test.rego"]
	if !ok {
		t.Fatal("authz_test.rego is not embedded")
	}
	want := 0
	for _, r := range tm.Rules {
		if strings.HasPrefix(r.Head.Ref()[0].Value.(ast.Var).String(), "test_") {
			want++
		}
	}
	ch, err := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithEnablePrintStatements(true)).
		CapturePrintOutput(true).
		RaiseBuiltinErrors(true).
		Run(context.Background(), mods)
	if err != nil {
		t.Fatalf("running Rego tests: %v", err)
	}
	ran, cases := 0, 0
	for r := range ch {
		ran++
		for name, sr := range r.SubResults.Iter {
			cases++
			if sr.Fail {
				t.Errorf("%s.%s case %s: FAIL", r.Package, r.Name, strings.Join(name, "/"))
			}
		}
		if !r.Pass() {
			t.Errorf("%s: %v output=%q", r.String(), r.Error, r.Output)
		}
	}
	// Every test_ rule must have run; the matrix alone is 7 roles × 14
	// actions = 98 cases. Fewer means tests were silently not discovered.
	if want < 25 || ran != want || cases < 98 {
		t.Errorf("ran %d of %d Rego tests with %d cases, want all and ≥ 98 cases", ran, want, cases)
	}
	t.Logf("%d Rego tests, %d parameterised cases", ran, cases)
}
