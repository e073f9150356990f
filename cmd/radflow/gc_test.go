package main

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC: with GOGC unset (or empty) serve and worker run the
// collector at serviceGCPercent; a GOGC the operator set (a number or
// "off") is left to the runtime.
func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	for _, tc := range []struct {
		env  string
		want int
	}{{"", serviceGCPercent}, {"50", 100}, {"off", 100}} {
		t.Setenv("GOGC", tc.env)
		debug.SetGCPercent(100)
		tuneGC()
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tc.env, got, tc.want)
		}
	}
}
