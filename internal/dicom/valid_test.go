package dicom

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckReceivedUID: the receiving side's rule (moved here from
// ingest's TestValidUID with the same cases), plus leading zeros.
func TestCheckReceivedUID(t *testing.T) {
	for _, ok := range []string{"1", "1.2.840.10008.1.2", "2.25." + strings.Repeat("9", 59), "1.2.840.0113654.01"} {
		if err := CheckReceivedUID(ok); err != nil || !ValidReceivedUID(ok) {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".1", "1.", "1..2", "1.2a", "1.2 ", "2.25." + strings.Repeat("9", 60)} {
		if err := CheckReceivedUID(bad); !errors.Is(err, ErrInvalidUID) || ValidReceivedUID(bad) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}

// TestCheckUIDReason: the reasons name what is wrong, without a prefix
// (callers add the attribute name), and only CheckUID enforces the
// leading-zero rule.
func TestCheckUIDReason(t *testing.T) {
	for s, want := range map[string]string{
		"":                      "missing",
		strings.Repeat("1", 65): "65 characters, more than 64",
		"1..2":                  `empty component in "1..2"`,
		"1.2.":                  `empty component in "1.2."`,
		"1.2a":                  `character 'a' at 3 is not a digit or dot`,
		"1.2.840.0113654":       `component "0113654" has a leading zero`,
		"00.1":                  `component "00" has a leading zero`,
	} {
		err := CheckUID(s)
		if err == nil || err.Error() != want || !errors.Is(err, ErrInvalidUID) {
			t.Errorf("CheckUID(%q) = %v, want %q", s, err, want)
		}
	}
	for _, s := range []string{"0", "1.0.2", "2.25.0"} {
		if err := CheckUID(s); err != nil {
			t.Errorf("CheckUID(%q) = %v", s, err)
		}
	}
	if err := CheckReceivedUID("1.2.840.0113654"); err != nil {
		t.Errorf("CheckReceivedUID leading zero: %v", err)
	}
}

func TestValidAETitle(t *testing.T) {
	for s, want := range map[string]bool{
		"RADFLOW": true, "A": true, "STORE SCP": true, " PACS ": true, strings.Repeat("A", 16): true,
		"": false, "    ": false, strings.Repeat("A", 17): false, `A\B`: false, "A\tB": false,
		"A\x7f": false, "ÄE": false,
	} {
		if got := ValidAETitle(s); got != want {
			t.Errorf("ValidAETitle(%q) = %v, want %v", s, got, want)
		}
	}
}
