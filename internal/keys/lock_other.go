//go:build !unix

package keys

import (
	"fmt"
	"os"
	"path/filepath"
)

// LockDataDir is, where flock is unavailable, only a check that
// <dataDir>/keys exists or can be made: stop radflow serve and worker
// yourself before maintenance.
func LockDataDir(dataDir, dbPath string, lockFiles ...string) (release func(), err error) {
	if err := os.MkdirAll(filepath.Join(dataDir, "keys"), 0o700); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return func() {}, nil
}
