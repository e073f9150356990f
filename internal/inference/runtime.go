package inference

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ORTVersion is the ONNX Runtime release scripts/fetch-ort.sh installs.
const ORTVersion = "1.30.0"

// EnvLibrary names the environment variable holding the ORT library path.
const EnvLibrary = "RADFLOW_ORT_LIB"

// DefaultLibraryPath returns where scripts/fetch-ort.sh caches the ORT
// library:
// ${RADFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/radflow}/onnxruntime-1.30.0/libonnxruntime.so.1.
// It returns "" when no cache directory can be determined.
func DefaultLibraryPath() string {
	root := os.Getenv("RADFLOW_CACHE")
	if root == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil || home == "" {
				return ""
			}
			base = filepath.Join(home, ".cache")
		}
		root = filepath.Join(base, "radflow")
	}
	return filepath.Join(root, "onnxruntime-"+ORTVersion, "libonnxruntime.so.1")
}

// ResolveLibrary returns the absolute path of the ORT shared library to load:
// explicit when non-empty, else $RADFLOW_ORT_LIB when set, else
// DefaultLibraryPath. A path that is given but does not exist is an error;
// it does not fall through to the next source.
// errors: ErrRuntimeUnavailable (names the paths looked at and the fix).
func ResolveLibrary(explicit string) (string, error) {
	var p, from string
	switch {
	case explicit != "":
		p, from = explicit, "the explicit library path"
	case os.Getenv(EnvLibrary) != "":
		p, from = os.Getenv(EnvLibrary), "$"+EnvLibrary
	default:
		p, from = DefaultLibraryPath(), "the default cache path"
	}
	if p == "" {
		return "", fmt.Errorf("%w: no library path (no explicit path, $%s unset, no home or cache directory); run scripts/fetch-ort.sh and set %s to the path it prints",
			ErrRuntimeUnavailable, EnvLibrary, EnvLibrary)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: %v", ErrRuntimeUnavailable, from, p, err)
	}
	st, err := os.Stat(abs)
	if err != nil || st.IsDir() {
		return "", fmt.Errorf("%w: no ONNX Runtime library at %s (%s); looked in order at: explicit path, $%s, %s; fetch it with scripts/fetch-ort.sh (ONNX Runtime %s, needs >= 1.24)",
			ErrRuntimeUnavailable, abs, from, EnvLibrary, DefaultLibraryPath(), ORTVersion)
	}
	return abs, nil
}

var runtimeState struct {
	mu   sync.Mutex
	path string // non-empty once the environment is initialised
}

// InitRuntime loads the ORT shared library (located by ResolveLibrary) and
// initialises ORT's process-wide environment, once. It is safe for
// concurrent callers; after a success, later calls return the loaded path
// (an explicit path naming a different file is an error, since a process can
// hold one ORT environment); after a failure, a later call tries again.
// Open and OpenBytes call it; call it yourself to fail early.
// errors: ErrRuntimeUnavailable.
func InitRuntime(explicit string) (string, error) {
	runtimeState.mu.Lock()
	defer runtimeState.mu.Unlock()
	if runtimeState.path != "" {
		if explicit != "" {
			if abs, err := filepath.Abs(explicit); err != nil || abs != runtimeState.path {
				return runtimeState.path, fmt.Errorf("%w: ONNX Runtime already loaded from %s; cannot switch to %s in the same process",
					ErrRuntimeUnavailable, runtimeState.path, explicit)
			}
		}
		return runtimeState.path, nil
	}
	p, err := ResolveLibrary(explicit)
	if err != nil {
		return "", err
	}
	ort.SetSharedLibraryPath(p)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		hint := ""
		if strings.Contains(err.Error(), "API base") {
			hint = " (library older than ONNX Runtime 1.24?)"
		}
		return "", fmt.Errorf("%w: loading %s: %v%s; fetch a compatible one with scripts/fetch-ort.sh",
			ErrRuntimeUnavailable, p, err, hint)
	}
	runtimeState.path = p
	return p, nil
}

// RuntimeVersion returns the loaded ORT library's version string (e.g.
// "1.30.0"), or "" before InitRuntime succeeded.
func RuntimeVersion() string {
	runtimeState.mu.Lock()
	defer runtimeState.mu.Unlock()
	if runtimeState.path == "" {
		return ""
	}
	return ort.GetVersion()
}
