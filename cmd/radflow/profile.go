package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiling starts the diagnostics named by two undocumented
// environment variables, for measuring the service (docs/operations.md,
// Performance): RADFLOW_CPUPROFILE=FILE writes a pprof CPU profile and
// RADFLOW_TRACE=FILE a runtime execution trace (go tool trace) of the
// whole run, and RADFLOW_ALLOCPROFILE=FILE the allocations (pprof allocs:
// alloc_space, alloc_objects) written when the run ends. The returned
// function stops them and closes the files. A file that cannot be created
// is reported on stderr and skipped.
func startProfiling(stderr io.Writer) (stop func()) {
	var stops []func()
	for _, d := range []struct {
		env   string
		start func(io.Writer) error
		stop  func()
	}{
		{"RADFLOW_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile},
		{"RADFLOW_TRACE", trace.Start, trace.Stop},
	} {
		p := os.Getenv(d.env)
		if p == "" {
			continue
		}
		f, err := os.Create(p)
		if err == nil {
			if err = d.start(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "radflow: %s: %v\n", d.env, err)
			continue
		}
		stops = append(stops, func() { d.stop(); f.Close() })
	}
	if p := os.Getenv("RADFLOW_ALLOCPROFILE"); p != "" {
		stops = append(stops, func() {
			f, err := os.Create(p)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				fmt.Fprintf(stderr, "radflow: RADFLOW_ALLOCPROFILE: %v\n", err)
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
