package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Options of long-running commands come from four places, highest first:
// the command-line flag, the environment variable RADFLOW_<NAME> (upper
// case, '-' → '_'), the YAML file given by --config (or RADFLOW_CONFIG),
// whose keys are the flag names, and the built-in default. One name per
// option everywhere, so `radflow serve --help` documents all of them.

// envName returns the environment variable of flag name, e.g.
// "max-associations" → "RADFLOW_MAX_ASSOCIATIONS".
func envName(flagName string) string {
	return "RADFLOW_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyLayers fills every flag of fs that was not given on the command line
// from the environment, then from the YAML file at configPath ("" = none).
// Unknown YAML keys are an error, so that a typo is not silently ignored.
func applyLayers(fs *flag.FlagSet, configPath string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var file map[string]any
	if configPath != "" {
		b, err := os.ReadFile(configPath)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config file %s: %w", configPath, err)
		}
		var unknown []string
		for k := range file {
			if fs.Lookup(k) == nil || k == "config" {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("config file %s: unknown keys %v (keys are the flag names of --help)", configPath, unknown)
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] || f.Name == "config" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if e := f.Value.Set(fmt.Sprint(v)); e != nil {
				err = fmt.Errorf("config file %s: %s: %q: %w", configPath, f.Name, fmt.Sprint(v), e)
			}
		}
	})
	return err
}

// helpWithEnv appends each flag's environment variable to its usage text.
func helpWithEnv(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" && !strings.Contains(f.Usage, "[RADFLOW_") {
			f.Usage += " [" + envName(f.Name) + "]"
		}
	})
}
