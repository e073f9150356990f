package dicom

import (
	"errors"
	"fmt"
)

// ErrInvalidUID is wrapped by the errors of CheckUID and CheckReceivedUID.
var ErrInvalidUID = errors.New("dicom: invalid UID")

// uidError is a UID check's reason; its text is the reason alone (callers
// prefix the attribute name), errors.Is(err, ErrInvalidUID) holds.
type uidError string

func (e uidError) Error() string        { return string(e) }
func (e uidError) Is(target error) bool { return target == ErrInvalidUID }

// The UID syntax (PS3.5 9.1) is 1 to 64 characters, digits and dots, no
// empty component, and no leading zero in a component other than "0"
// itself. Real devices and archives send UIDs such as "1.2.840.0113654"
// that break only the leading-zero rule, and such a UID still identifies
// its instance; so radflow checks UIDs in two ways:
//
//   - CheckUID / ValidUID: the whole PS3.5 rule, for UIDs radflow writes
//     or generates (the SR writer, the Part 10 writer).
//   - CheckReceivedUID / ValidReceivedUID: the same without the
//     leading-zero rule, for UIDs radflow receives, stores, forwards or
//     records (ingest, the DIMSE SCP and SCU, export, the audit trail).

// CheckUID returns nil if s is a UID by the whole of PS3.5 9.1, else an
// error wrapping ErrInvalidUID that says why (without the attribute name).
func CheckUID(s string) error { return checkUID(s, false) }

// CheckReceivedUID is CheckUID without the leading-zero rule: it accepts
// components such as "01". Errors wrap ErrInvalidUID.
func CheckReceivedUID(s string) error { return checkUID(s, true) }

// ValidUID reports whether s is a UID by the whole of PS3.5 9.1: at most
// 64 characters, dot-separated numeric components without leading zeros.
func ValidUID(s string) bool { return checkUID(s, false) == nil }

// ValidReceivedUID reports whether CheckReceivedUID accepts s (leading
// zeros in a component tolerated).
func ValidReceivedUID(s string) bool { return checkUID(s, true) == nil }

func checkUID(s string, leadingZeros bool) error {
	if s == "" {
		return uidError("missing")
	}
	if len(s) > 64 {
		return uidError(fmt.Sprintf("%d characters, more than 64", len(s)))
	}
	start := 0 // index of the current component's first character
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if i == start {
				return uidError(fmt.Sprintf("empty component in %q", s))
			}
			if !leadingZeros && i-start > 1 && s[start] == '0' {
				return uidError(fmt.Sprintf("component %q has a leading zero", s[start:i]))
			}
			start = i + 1
			continue
		}
		if c := s[i]; c < '0' || c > '9' {
			return uidError(fmt.Sprintf("character %q at %d is not a digit or dot", c, i))
		}
	}
	return nil
}

// ValidAETitle reports whether s is a usable Application Entity title
// (AE value representation, PS3.5 Table 6.2-1): 1 to 16 characters of
// printable ASCII (0x20-0x7E) without backslash, not only spaces.
func ValidAETitle(s string) bool {
	if len(s) == 0 || len(s) > 16 {
		return false
	}
	blank := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '\\' {
			return false
		}
		if c != ' ' {
			blank = false
		}
	}
	return !blank
}
