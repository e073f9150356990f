// Package timerslack sets the process's timer slack (Linux
// prctl(PR_SET_TIMERSLACK), the time the kernel may delay a sleeping
// thread's wake-up to batch it with others) to 500 µs when the
// executable is loaded, before the Go runtime starts a thread; every
// thread inherits it. Importing it is all it takes (package main does).
//
// Why: while goroutines block in system calls (fdatasync, O_DIRECT
// writes, and after every moment the whole process was idle) the Go
// runtime's sysmon thread polls every 20 µs, which the default 50 µs slack
// turns into a wake-up about every 70 µs: on a two-core VM storing 0.5 MB
// CT instances over four C-STORE associations that thread took 11 % of
// radflow's CPU, mostly context switches. With 500 µs it wakes about every
// 0.5 ms at most; Go's own timers wait in epoll with millisecond
// resolution and are not affected. Measured (docs/operations.md,
// Performance): radflow CPU per instance -8 to -25 % over one and four
// associations; instances/s up by a few per cent (200 µs did as well over
// four associations and less over one; 1 ms was slower).
//
// RADFLOW_TIMER_SLACK_NS overrides the value: decimal nanoseconds from 0
// to MaxSlack (10 ms; a much larger slack stalls the Go runtime, whose
// short sleeps it stretches); 0 keeps the kernel's default (50 µs, or what
// the parent process set). Elsewhere than
// Linux with cgo it does nothing.
package timerslack

import "errors"

// EnvVar names the environment variable that overrides the slack.
const EnvVar = "RADFLOW_TIMER_SLACK_NS"

// MaxSlack is the largest slack EnvVar may set, in nanoseconds (10 ms;
// RADFLOW_MAX_SLACK_NS in the constructor).
const MaxSlack = 10_000_000

// ErrInvalid: EnvVar is set to something other than a decimal number.
var ErrInvalid = errors.New("timerslack: invalid value")

// Applied returns the slack in nanoseconds set at load, or 0 when none was
// set (EnvVar is 0, or not Linux with cgo). errors: ErrInvalid (EnvVar is
// not decimal digits only, or above MaxSlack; nothing was set), or the
// prctl failure.
func Applied() (uint64, error) { return applied() }
