package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/radflow/radflow/internal/inference"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/pipeline"
)

// modelFlags are the flags every command that runs models shares.
type modelFlags struct {
	repo     string
	ortLib   string
	provider string
	threads  int
	spinning bool
}

func (m *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.repo, "models", os.Getenv("RADFLOW_MODELS"), "model repository directory `DIR` (<name>/<version>/config.yaml); default: the repository built into the binary [RADFLOW_MODELS]")
	fs.StringVar(&m.ortLib, "ort-lib", "", "ONNX Runtime shared library `PATH`; default $RADFLOW_ORT_LIB, then the cache that scripts/fetch-ort.sh fills")
	fs.StringVar(&m.provider, "provider", envOr("RADFLOW_PROVIDER", "cpu"), "execution provider: cpu, cuda or tensorrt (needs a GPU build of ONNX Runtime) [RADFLOW_PROVIDER]")
	fs.IntVar(&m.threads, "threads", 1, "ONNX Runtime intra-op threads per session")
	fs.BoolVar(&m.spinning, "ort-spinning", false, "let ONNX Runtime's threads busy-wait for work (lower latency; burns CPU while idle, so off on shared hosts)")
}

func (m *modelFlags) runner() (*pipeline.Runner, error) {
	var repo *models.Repository
	var err error
	if m.repo != "" {
		repo, err = models.LoadDir(m.repo)
	} else {
		repo, err = models.Bundled()
	}
	if err != nil {
		return nil, fmt.Errorf("loading models: %w", err)
	}
	if _, err := inference.InitRuntime(m.ortLib); err != nil {
		return nil, err
	}
	return pipeline.NewRunner(repo, inference.Options{
		LibraryPath:    m.ortLib,
		Provider:       inference.Provider(m.provider),
		IntraOpThreads: m.threads,
		Spinning:       m.spinning,
	}), nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
