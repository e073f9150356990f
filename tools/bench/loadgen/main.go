// Command loadgen prepares and sends the benchmark workload of
// tools/bench/orthanc-compare.sh.
//
//	loadgen copies -src CT.dcm -out DIR -n N
//	    writes N distinct copies of a Part 10 file (DIR/000000.dcm ...),
//	    each with its SOP Instance UID (file meta and data set) replaced
//	    by a numbered UID of the same length, so every element length and
//	    the pixel data stay as they are.
//	loadgen stow -url BASE -dir DIR -per 10 -conns 4
//	    sends DIR's files with STOW-RS (POST BASE/studies), `per`
//	    instances per request over `conns` concurrent connections, and
//	    prints "instances seconds instances/s". Any failed instance is an
//	    error (exit status 1).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/radflow/radflow/internal/dicomweb"
	"github.com/radflow/radflow/internal/dimse"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen copies|stow [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "copies":
		err = copies(os.Args[2:])
	case "stow":
		err = stow(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func copies(args []string) error {
	fs := flag.NewFlagSet("copies", flag.ExitOnError)
	src := fs.String("src", "", "source Part 10 file")
	out := fs.String("out", "", "output directory")
	n := fs.Int("n", 100, "number of copies")
	_ = fs.Parse(args)
	b, err := os.ReadFile(*src)
	if err != nil {
		return err
	}
	meta, _, err := dimse.ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		return err
	}
	old := meta.MediaStorageSOPInstanceUID
	if len(old) < 10 {
		return fmt.Errorf("SOP Instance UID %q too short to number", old)
	}
	var offs []int
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(old))
		if j < 0 {
			break
		}
		offs = append(offs, i+j)
		i += j + len(old)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	buf := make([]byte, len(b))
	for i := range *n {
		copy(buf, b)
		suffix := fmt.Sprintf("%08d", i)
		u := old[:len(old)-len(suffix)] + suffix
		for _, o := range offs {
			copy(buf[o:], u)
		}
		if err := os.WriteFile(filepath.Join(*out, fmt.Sprintf("%06d.dcm", i)), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func stow(args []string) error {
	fs := flag.NewFlagSet("stow", flag.ExitOnError)
	base := fs.String("url", "", "DICOMweb base URL (POST <url>/studies)")
	dir := fs.String("dir", "", "directory of Part 10 files")
	per := fs.Int("per", 10, "instances per request")
	conns := fs.Int("conns", 4, "concurrent connections")
	token := fs.String("token", os.Getenv("RADFLOW_TOKEN"), "bearer token sent with each request [RADFLOW_TOKEN] (radflow needs a technologist or ai_service token)")
	_ = fs.Parse(args)
	var header http.Header
	if *token != "" {
		header = http.Header{"Authorization": []string{"Bearer " + *token}}
	}
	names, err := filepath.Glob(filepath.Join(*dir, "*.dcm"))
	if err != nil || len(names) == 0 {
		return fmt.Errorf("no .dcm files in %s", *dir)
	}
	sort.Strings(names)
	// Read everything first so disk reads are not timed.
	files := make([][]byte, len(names))
	for i, n := range names {
		if files[i], err = os.ReadFile(n); err != nil {
			return err
		}
	}
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *conns {
		wg.Go(func() {
			cl := dicomweb.Client{BaseURL: *base, HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}, Header: header}
			for {
				s := int(next.Add(int64(*per))) - *per
				if s >= len(files) {
					return
				}
				var rs []io.Reader
				for _, f := range files[s:min(s+*per, len(files))] {
					rs = append(rs, bytes.NewReader(f))
				}
				resp, err := cl.Store(ctx, "", rs...)
				if err != nil || resp.HTTPStatus != 200 || len(resp.Referenced) != len(rs) {
					failed.Add(int64(len(rs)))
					fmt.Fprintf(os.Stderr, "loadgen: STOW request at %d: %v\n", s, err)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf("%d %.3f %.1f\n", len(files), el, float64(len(files))/el)
	if failed.Load() > 0 {
		return fmt.Errorf("%d instances failed", failed.Load())
	}
	return nil
}
