package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestStartProfilingWritesProfileAndTrace(t *testing.T) {
	dir := t.TempDir()
	cpu, tr := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "run.trace")
	t.Setenv("RADFLOW_CPUPROFILE", cpu)
	t.Setenv("RADFLOW_TRACE", tr)
	var stderr bytes.Buffer
	stop := startProfiling(&stderr)
	if code := run([]string{"version"}, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("version: exit %d", code)
	}
	stop()
	if stderr.Len() != 0 {
		t.Fatalf("stderr: %s", stderr.String())
	}
	for _, p := range []string{cpu, tr} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == 0 {
			t.Errorf("%s is empty", p)
		}
	}
	// A gzip stream (pprof's format) and the trace file's magic.
	if b, _ := os.ReadFile(cpu); !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("CPU profile is not gzip: % x", b[:min(len(b), 4)])
	}
	if b, _ := os.ReadFile(tr); !bytes.HasPrefix(b, []byte("go 1.")) {
		t.Errorf("trace header: %q", b[:min(len(b), 8)])
	}
}

func TestStartProfilingWithoutVariablesDoesNothing(t *testing.T) {
	t.Setenv("RADFLOW_CPUPROFILE", "")
	t.Setenv("RADFLOW_TRACE", "")
	var stderr bytes.Buffer
	startProfiling(&stderr)()
	if stderr.Len() != 0 {
		t.Fatalf("stderr: %s", stderr.String())
	}
}

func TestStartProfilingReportsUnwritablePath(t *testing.T) {
	t.Setenv("RADFLOW_CPUPROFILE", filepath.Join(t.TempDir(), "missing", "cpu.pprof"))
	t.Setenv("RADFLOW_TRACE", "")
	var stderr bytes.Buffer
	startProfiling(&stderr)()
	if !bytes.Contains(stderr.Bytes(), []byte("RADFLOW_CPUPROFILE")) {
		t.Fatalf("stderr: %q", stderr.String())
	}
}
