# radflow — build, run, test. `make run` and `make test` are the README's two
# set-up commands: each installs what it needs (Debian packages when root or
# with sudo, Go modules, the ONNX Runtime CPU library) before it starts.

SHELL      := /bin/bash
GO         ?= go
BIN        := bin/radflow
SHARED     ?= ../shared
# Real DICOM for `make demo`: the NIH chest radiograph when ../shared is there,
# otherwise the CT/MR test files Debian's python3-pydicom ships.
DEMO_DICOM ?= $(firstword $(wildcard $(SHARED)/dicom/nhsx-nih-chestxray) /usr/lib/python3/dist-packages/pydicom/data/test_files)
ORT_LIB     = $(shell scripts/fetch-ort.sh)
GOTESTFLAGS ?=
BENCH      ?= .
# go.mod's toolchain line pins the patched Go release (standard-library
# security fixes, checked by `make vulncheck`); `auto` lets go fetch it
# through the module proxy when the installed go is older.
export GOTOOLCHAIN ?= auto

.PHONY: all deps ort build run demo test vulncheck bench train clean

all: build

deps:
	@scripts/install-deps.sh
	@$(GO) mod download

ort: deps
	@scripts/fetch-ort.sh >/dev/null

build: deps
	$(GO) build -trimpath -o $(BIN) ./cmd/radflow

# The main job: the service on its zero-configuration defaults (./radflow-data,
# HTTP 127.0.0.1:8080, DICOM 127.0.0.1:11112 AE RADFLOW, the bundled model).
run: build ort
	RADFLOW_ORT_LIB="$(ORT_LIB)" $(BIN) serve

# Without a server: the reference model on real DICOM files, one table row each.
demo: build ort
	RADFLOW_ORT_LIB="$(ORT_LIB)" $(BIN) infer $$(find $(DEMO_DICOM) -name '*.dcm' | sort)

test: deps ort
	RADFLOW_ORT_LIB="$(ORT_LIB)" $(GO) test $(GOTESTFLAGS) ./...
	@scripts/vulncheck.sh

# govulncheck against a pinned snapshot of the Go vulnerability database
# (RADFLOW_VULNDB=https://vuln.go.dev uses the live one); part of `make test`.
vulncheck: deps
	@scripts/vulncheck.sh

bench: deps ort
	RADFLOW_ORT_LIB="$(ORT_LIB)" $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem ./...

train:
	/usr/bin/python3 tools/train/train.py --data $(SHARED)/data/chest-xray-pneumonia/train --out models/chest-xray-pneumonia/1

clean:
	rm -rf bin
