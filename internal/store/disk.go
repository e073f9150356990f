package store

import (
	"fmt"
)

// FreeBytes returns the bytes available to an unprivileged process on the
// volume holding path (statfs f_bavail × f_bsize).
func FreeBytes(path string) (uint64, error) {
	n, err := freeBytes(path)
	if err != nil {
		return 0, fmt.Errorf("store: free space of %s: %w", path, err)
	}
	return n, nil
}

// CheckFree returns ErrStorageFull (wrapped, with the figures) when the
// volume holding path has less than minFree bytes available. minFree 0
// disables the check.
func CheckFree(path string, minFree uint64) error {
	if minFree == 0 {
		return nil
	}
	free, err := FreeBytes(path)
	if err != nil {
		return err
	}
	if free < minFree {
		return fmt.Errorf("%w: %d bytes free, watermark %d", ErrStorageFull, free, minFree)
	}
	return nil
}
