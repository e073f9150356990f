//go:build linux && cgo

package timerslack

/*
#include <stdlib.h>
#include <sys/prctl.h>

#define RADFLOW_MAX_SLACK_NS 10000000UL

static unsigned long radflow_timer_slack_ns;
static int radflow_timer_slack_errno;

// Runs when the executable is loaded, before the Go runtime starts its
// first thread (sysmon), so that every thread inherits the slack.
__attribute__((constructor)) static void radflow_set_timer_slack(void) {
	unsigned long ns = 500000;
	const char *v = getenv("RADFLOW_TIMER_SLACK_NS");
	if (v != NULL && *v != '\0') {
		// Decimal digits only (no sign, space or base prefix), at most
		// RADFLOW_MAX_SLACK_NS: a huge slack stalls the Go runtime.
		ns = 0;
		for (const char *c = v; *c != '\0'; c++) {
			if (*c < '0' || *c > '9' || ns > RADFLOW_MAX_SLACK_NS) {
				radflow_timer_slack_errno = -1;
				return;
			}
			ns = ns * 10 + (unsigned long)(*c - '0');
		}
		if (ns > RADFLOW_MAX_SLACK_NS) {
			radflow_timer_slack_errno = -1;
			return;
		}
	}
	if (ns == 0) {
		return;
	}
	if (prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) != 0) {
		radflow_timer_slack_errno = 1;
		return;
	}
	radflow_timer_slack_ns = ns;
}

static unsigned long radflow_timer_slack(void) { return radflow_timer_slack_ns; }
static int radflow_timer_slack_failed(void) { return radflow_timer_slack_errno; }
*/
import "C"

import "fmt"

func applied() (uint64, error) {
	switch C.radflow_timer_slack_failed() {
	case -1:
		return 0, fmt.Errorf("%w: %s is not a number of nanoseconds from 0 to %d", ErrInvalid, EnvVar, MaxSlack)
	case 1:
		return 0, fmt.Errorf("timerslack: prctl(PR_SET_TIMERSLACK) failed")
	}
	return uint64(C.radflow_timer_slack()), nil
}
