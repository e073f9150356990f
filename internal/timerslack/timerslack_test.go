//go:build linux && cgo

package timerslack

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// inherited is the slack the children start from: set on the thread
// that starts them, so that "0 keeps what the parent set" is told apart
// from the 500 µs default.
const inherited = 300000

// slacks reads the timer slack of every thread of this process.
func slacks(t *testing.T) []uint64 {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var out []uint64
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + task.Name() + "/timerslack_ns")
		if err != nil {
			t.Skipf("no timerslack_ns (Linux < 4.6?): %v", err)
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestChild is run as a subprocess by TestAppliedToEveryThread with
// the environment under test; it prints Applied and every thread's slack.
func TestChild(t *testing.T) {
	if os.Getenv("TIMERSLACK_CHILD") == "" {
		t.Skip("run by TestAppliedToEveryThread")
	}
	v, err := Applied()
	errs := "nil"
	if err != nil {
		errs = err.Error()
	}
	var s []string
	for _, x := range slacks(t) {
		s = append(s, strconv.FormatUint(x, 10))
	}
	os.Stdout.WriteString("RESULT " + strconv.FormatUint(v, 10) + " " + strings.Join(s, ",") + " " + errs + "\n")
}

func TestAppliedToEveryThread(t *testing.T) {
	for _, tc := range []struct {
		env, applied, each, err string
	}{
		{"", "500000", "500000", "nil"},
		{"1000000", "1000000", "1000000", "nil"},
		{"0", "0", "300000", "nil"},
		{"2ms", "0", "300000", "timerslack: invalid value: RADFLOW_TIMER_SLACK_NS is not a number of nanoseconds from 0 to 10000000"},
		{"-5", "0", "300000", "timerslack: invalid value: RADFLOW_TIMER_SLACK_NS is not a number of nanoseconds from 0 to 10000000"},
		{" 500", "0", "300000", "timerslack: invalid value: RADFLOW_TIMER_SLACK_NS is not a number of nanoseconds from 0 to 10000000"},
		{"0x10", "0", "300000", "timerslack: invalid value: RADFLOW_TIMER_SLACK_NS is not a number of nanoseconds from 0 to 10000000"},
		{"10000001", "0", "300000", "timerslack: invalid value: RADFLOW_TIMER_SLACK_NS is not a number of nanoseconds from 0 to 10000000"},
		{"18446744073709551616", "0", "300000", "timerslack: invalid value: RADFLOW_TIMER_SLACK_NS is not a number of nanoseconds from 0 to 10000000"},
		{"99999999999999999999999", "0", "300000", "timerslack: invalid value: RADFLOW_TIMER_SLACK_NS is not a number of nanoseconds from 0 to 10000000"},
		{"10000000", "10000000", "10000000", "nil"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.v")
		cmd.Env = append(os.Environ(), "TIMERSLACK_CHILD=1", EnvVar+"="+tc.env)
		out, err := startFromSlack(cmd)
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.env, err, out)
		}
		var line string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "RESULT ") {
				line = l
			}
		}
		f := strings.SplitN(strings.TrimPrefix(line, "RESULT "), " ", 3)
		if len(f) != 3 {
			t.Fatalf("%q: no result in\n%s", tc.env, out)
		}
		if f[0] != tc.applied || f[2] != tc.err {
			t.Errorf("%s=%q: Applied = %s, %s; want %s, %s", EnvVar, tc.env, f[0], f[2], tc.applied, tc.err)
		}
		threads := strings.Split(f[1], ",")
		if len(threads) < 2 {
			t.Errorf("%q: only %d threads", tc.env, len(threads))
		}
		for _, s := range threads {
			if s != tc.each {
				t.Errorf("%s=%q: a thread has slack %s, want %s on all of %v", EnvVar, tc.env, s, tc.each, threads)
				break
			}
		}
	}
}

// startFromSlack runs cmd from a thread whose timer slack is inherited
// (a child process starts with its parent thread's slack).
func startFromSlack(cmd *exec.Cmd) ([]byte, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, inherited, 0, 0, 0); err != nil {
		return nil, err
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	return cmd.CombinedOutput()
}
