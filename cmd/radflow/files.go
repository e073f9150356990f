package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// expandPaths turns the command-line arguments (files or directories) into
// a sorted list of regular files, walking directories recursively. Hidden
// files and directories (".git", ".DS_Store") are skipped; symbolic
// links to files are followed, links to directories are not. A path that does
// not exist is returned as-is so that the caller reports its error in order.
func expandPaths(args []string) []string {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil || !st.IsDir() {
			out = append(out, a)
			continue
		}
		var found []string
		_ = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				found = append(found, p) // reported as an error by the caller
				return nil
			}
			name := d.Name()
			if p != a && len(name) > 0 && name[0] == '.' {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				found = append(found, p)
			} else if d.Type()&fs.ModeSymlink != 0 {
				// Follow links to files (datasets are often linked in);
				// linked directories are not walked, so no cycles.
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
					found = append(found, p)
				}
			}
			return nil
		})
		sort.Strings(found)
		out = append(out, found...)
	}
	return out
}
