package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplyLayersPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "radflow.yaml")
	if err := os.WriteFile(cfg, []byte("http: 0.0.0.0:9000\nae: FROMFILE\nworkers: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	httpAddr := fs.String("http", "127.0.0.1:8080", "")
	ae := fs.String("ae", "RADFLOW", "")
	workers := fs.Int("workers", 1, "")
	data := fs.String("data", "./radflow-data", "")
	t.Setenv("RADFLOW_AE", "FROMENV")
	if err := fs.Parse([]string{"--workers", "7"}); err != nil {
		t.Fatal(err)
	}
	if err := applyLayers(fs, cfg); err != nil {
		t.Fatal(err)
	}
	// flag > env > file > default
	if *workers != 7 || *ae != "FROMENV" || *httpAddr != "0.0.0.0:9000" || *data != "./radflow-data" {
		t.Fatalf("workers=%d ae=%q http=%q data=%q", *workers, *ae, *httpAddr, *data)
	}
}

func TestApplyLayersRejectsUnknownKeysAndBadValues(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "radflow.yaml")
	os.WriteFile(cfg, []byte("htp: 1\n"), 0o600)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("http", "", "")
	n := fs.Int("workers", 1, "")
	fs.Parse(nil)
	if err := applyLayers(fs, cfg); err == nil || !strings.Contains(err.Error(), "unknown keys [htp]") {
		t.Fatalf("err = %v", err)
	}
	t.Setenv("RADFLOW_WORKERS", "many")
	if err := applyLayers(fs, ""); err == nil || !strings.Contains(err.Error(), "RADFLOW_WORKERS") {
		t.Fatalf("err = %v, workers = %d", err, *n)
	}
}
