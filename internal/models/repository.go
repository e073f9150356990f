package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/transform"
	bundledmodels "github.com/radflow/radflow/models"
)

// ConfigFile and CardFile are the fixed file names in a version directory.
const (
	ConfigFile = "config.yaml"
	CardFile   = "MODEL_CARD.md"
)

// Version is one loaded, checksum-verified model version.
type Version struct {
	Name    string
	Version int
	Config  *Config
	// Spec is the config's preprocessing, with Channels from the input shape.
	Spec transform.Spec

	fsys    fs.FS
	dir     string // <name>/<version> inside fsys
	diskDir string // absolute directory when loaded by LoadDir, else ""
}

// Ref returns "name@version", e.g. "chest-xray-pneumonia@1".
func (v *Version) Ref() string { return v.Name + "@" + strconv.Itoa(v.Version) }

// ModelBytes reads the ONNX file and verifies it against config.yaml's
// sha256 and size_bytes again (the file may have changed since Load).
// errors: ErrChecksum (mismatch or unreadable).
func (v *Version) ModelBytes() ([]byte, error) {
	b, err := fs.ReadFile(v.fsys, path.Join(v.dir, v.Config.Model.File))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrChecksum, v.Ref(), err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != v.Config.Model.SHA256 {
		return nil, fmt.Errorf("%w: %s: %s has sha256 %s, config.yaml says %s", ErrChecksum, v.Ref(), v.Config.Model.File, got, v.Config.Model.SHA256)
	}
	if s := v.Config.Model.SizeBytes; s != 0 && int64(len(b)) != s {
		return nil, fmt.Errorf("%w: %s: %s has %d bytes, config.yaml says %d", ErrChecksum, v.Ref(), v.Config.Model.File, len(b), s)
	}
	return b, nil
}

// ModelPath returns the ONNX file's absolute path when the repository was
// loaded from a directory, "" for an fs.FS (e.g. the embedded models): use
// ModelBytes with inference.OpenBytes then.
func (v *Version) ModelPath() string {
	if v.diskDir == "" {
		return ""
	}
	return filepath.Join(v.diskDir, v.Config.Model.File)
}

// Card returns MODEL_CARD.md ("" when the version has none).
func (v *Version) Card() (string, error) {
	b, err := fs.ReadFile(v.fsys, path.Join(v.dir, CardFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

// Pipeline returns the preprocessing pipeline of this version.
func (v *Version) Pipeline() (*transform.Pipeline, error) { return transform.New(v.Spec) }

// Repository holds every version of every model found. It is read-only
// after Load and safe for concurrent use.
type Repository struct {
	models map[string][]*Version // versions ascending
}

// LoadDir loads the repository rooted at dir (see Load); ModelPath then
// gives on-disk paths. errors: as Load.
func LoadDir(dir string) (*Repository, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: model repository %s is not a directory", ErrNotFound, abs)
	}
	return load(os.DirFS(abs), abs)
}

// Load loads every <name>/<version>/config.yaml under the root of fsys:
// names matching [a-z0-9-]+, versions positive integers (other entries
// are ignored), and verifies each model file's sha256.
// errors: ErrConfig (bad config.yaml, version directory without one),
// ErrChecksum.
func Load(fsys fs.FS) (*Repository, error) { return load(fsys, "") }

func load(fsys fs.FS, diskRoot string) (*Repository, error) {
	r := &Repository{models: map[string][]*Version{}}
	names, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("%w: reading repository: %v", ErrConfig, err)
	}
	for _, n := range names {
		if !n.IsDir() || !nameRE.MatchString(n.Name()) {
			continue
		}
		vers, err := fs.ReadDir(fsys, n.Name())
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrConfig, n.Name(), err)
		}
		for _, d := range vers {
			num, err := strconv.Atoi(d.Name())
			if !d.IsDir() || err != nil || num < 1 || strconv.Itoa(num) != d.Name() {
				continue
			}
			v, err := loadVersion(fsys, n.Name(), num, diskRoot)
			if err != nil {
				return nil, err
			}
			r.models[v.Name] = append(r.models[v.Name], v)
		}
	}
	for _, vs := range r.models {
		sort.Slice(vs, func(i, j int) bool { return vs[i].Version < vs[j].Version })
	}
	return r, nil
}

func loadVersion(fsys fs.FS, name string, num int, diskRoot string) (*Version, error) {
	dir := path.Join(name, strconv.Itoa(num))
	data, err := fs.ReadFile(fsys, path.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, dir, err)
	}
	c, spec, err := parseConfig(data, name, num)
	if err != nil {
		return nil, err
	}
	v := &Version{Name: name, Version: num, Config: c, Spec: spec, fsys: fsys, dir: dir}
	if diskRoot != "" {
		v.diskDir = filepath.Join(diskRoot, filepath.FromSlash(dir))
	}
	if _, err := v.ModelBytes(); err != nil {
		return nil, err
	}
	return v, nil
}

// Names returns the model names, sorted.
func (r *Repository) Names() []string {
	out := make([]string, 0, len(r.models))
	for n := range r.models {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Versions returns every version of name, oldest first (nil if unknown).
func (r *Repository) Versions(name string) []*Version {
	return append([]*Version(nil), r.models[name]...)
}

// Get returns version of model name; version "" or "latest" means the
// highest version number. errors: ErrNotFound (listing what exists).
func (r *Repository) Get(name, version string) (*Version, error) {
	vs := r.models[name]
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: no model %q (have %s)", ErrNotFound, name, strings.Join(r.Names(), ", "))
	}
	if version == "" || version == "latest" {
		return vs[len(vs)-1], nil
	}
	for _, v := range vs {
		if strconv.Itoa(v.Version) == version {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: model %q has no version %q", ErrNotFound, name, version)
}

// Lookup is Get for a reference "name" or "name@version" (a --model flag).
// errors: ErrNotFound.
func (r *Repository) Lookup(ref string) (*Version, error) {
	name, version, _ := strings.Cut(ref, "@")
	return r.Get(name, version)
}

// Match is one model version an instance is routed to, and why.
type Match struct {
	Version *Version
	Reason  Reason
}

// Select returns, for every model whose latest version's routing accepts a
// (Routing.Match), that version and the reason, sorted by model name.
// Older versions are served only when asked for by Get (Triton's "latest"
// version policy). An empty result means no model applies.
func (r *Repository) Select(a Attributes) []Match {
	var out []Match
	for _, n := range r.Names() {
		vs := r.models[n]
		v := vs[len(vs)-1]
		if reason, ok := v.Config.Routing.Match(a); ok {
			out = append(out, Match{Version: v, Reason: reason})
		}
	}
	return out
}

// AttributesOf reads the routing attributes of in; callingAE is the
// sender's AE title ("" for files).
func AttributesOf(in *dicom.Instance, callingAE string) Attributes {
	return Attributes{
		Modality:          in.String(tag.Modality),
		BodyPartExamined:  in.String(tag.BodyPartExamined),
		SOPClassUID:       in.String(tag.SOPClassUID),
		StudyDescription:  in.String(tag.StudyDescription),
		SeriesDescription: in.String(tag.SeriesDescription),
		CallingAETitle:    callingAE,
	}
}

// Bundled loads the model repository embedded in the binary (package
// bundledmodels, the repository's models/ directory). errors: as Load.
func Bundled() (*Repository, error) { return Load(bundledmodels.FS) }
