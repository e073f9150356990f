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
// whole run. The returned function stops them and closes the files. A
// file that cannot be created is reported on stderr and skipped.
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
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
