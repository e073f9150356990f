package policy

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchInputs: a mix of allows, organisation denies and a break-glass,
// cycled so the benchmark is not one cached path.
func benchInputs() []Input {
	glass := request([]string{"referring_physician"}, "study:read")
	glass.Resource.Organisation = "org-b"
	glass.Context.BreakGlass, glass.Context.BreakGlassReason = true, "stroke alert"
	other := request([]string{"referring_physician"}, "result:read")
	other.Resource.Organisation = "org-b"
	return []Input{
		request([]string{"radiologist"}, "study:read"),
		request([]string{"ai_service"}, "instance:store"),
		other,
		glass,
		request([]string{"auditor"}, "study:read"),
		request([]string{"admin"}, "admin:keys"),
	}
}

// BenchmarkDecide: one Decide (validation, prepared query evaluation,
// decision parsing, UUID) on the shipped policy.
func BenchmarkDecide(b *testing.B) {
	for _, ev := range evaluators {
		b.Run(ev, func(b *testing.B) {
			e := newEngine(b, Config{Evaluator: ev})
			ins := benchInputs()
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := e.Decide(ctx, ins[i%len(ins)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// evaluators: each benchmark runs on both; wasm is the default.
var evaluators = []string{EvaluatorWasm, EvaluatorTopdown}

// BenchmarkDecidePaths: Decide on each benchmark input alone, showing what
// each path through the policy costs (allows evaluate the fewest rules; an
// organisation deny, a role deny and a break-glass evaluate the most).
func BenchmarkDecidePaths(b *testing.B) {
	for _, ev := range evaluators {
		e := newEngine(b, Config{Evaluator: ev})
		names := []string{"radiologist-read", "ai_service-store", "referring-other-org-deny", "break-glass", "auditor-study-deny", "admin-keys"}
		for k, in := range benchInputs() {
			benchPath(b, e, ev+"/"+names[k], in)
		}
	}
}

func benchPath(b *testing.B, e *Engine, name string, in Input) {
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Decide(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecideParallel: Decide from GOMAXPROCS goroutines.
func BenchmarkDecideParallel(b *testing.B) {
	for _, ev := range evaluators {
		b.Run(ev, func(b *testing.B) { benchParallel(b, newEngine(b, Config{Evaluator: ev})) })
	}
}

func benchParallel(b *testing.B, e *Engine) {
	ins := benchInputs()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := e.Decide(context.Background(), ins[i%len(ins)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkDecideLatency times each Decide and reports the p50, p99 and
// max in µs per decision (target: p99 under 100 µs), as wall time and as
// the CPU time of the benchmark's (locked) OS thread. On a shared, loaded
// machine the wall-time tail includes time the thread spent descheduled; the
// thread CPU time does not.
func BenchmarkDecideLatency(b *testing.B) {
	for _, ev := range evaluators {
		b.Run(ev, func(b *testing.B) { benchLatency(b, newEngine(b, Config{Evaluator: ev})) })
	}
}

func benchLatency(b *testing.B, e *Engine) {
	ins := benchInputs()
	ctx := context.Background()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var wall, cpu []time.Duration
	i := 0
	for b.Loop() {
		c0 := threadCPU()
		t0 := time.Now()
		if _, err := e.Decide(ctx, ins[i%len(ins)]); err != nil {
			b.Fatal(err)
		}
		wall = append(wall, time.Since(t0))
		cpu = append(cpu, threadCPU()-c0)
		i++
	}
	report := func(durs []time.Duration, unit string) {
		slices.Sort(durs)
		q := func(p float64) float64 { return float64(durs[int(p*float64(len(durs)-1))].Nanoseconds()) / 1e3 }
		b.ReportMetric(q(0.50), "p50-"+unit)
		b.ReportMetric(q(0.99), "p99-"+unit)
	}
	report(wall, "wall-µs")
	report(cpu, "cpu-µs")
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
