#!/usr/bin/env bash
# govulncheck over every package, against the Go vulnerability database.
#
# The database: RADFLOW_VULNDB when set (a URL such as https://vuln.go.dev or
# file:///path to a v1 database); otherwise a snapshot built from the
# golang.org/x/vulndb module at the version pinned below, fetched through the
# Go module proxy (the same route as every other dependency, so it works on
# hosts that reach the proxy but not vuln.go.dev) and indexed with vulndb's
# own cmd/indexdb into ~/.cache/radflow/vulndb-<version>. Bump VULNDB_VERSION
# like any dependency (`go list -m -versions golang.org/x/vulndb`).
#
# Exit status: govulncheck's — 0 clean, 3 when code calls a known-vulnerable
# symbol (the Go toolchain's standard library included: go.mod's toolchain
# line pins the patched release).
set -euo pipefail
cd "$(dirname "$0")/.."

GOVULNCHECK_VERSION=v1.9.0
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018

db="${RADFLOW_VULNDB:-}"
if [[ -z "$db" ]]; then
	cache="${XDG_CACHE_HOME:-$HOME/.cache}/radflow/vulndb-${VULNDB_VERSION}"
	if [[ ! -f "$cache/index/db.json" ]]; then
		echo "vulncheck: building the vulnerability database from golang.org/x/vulndb@${VULNDB_VERSION}" >&2
		src=$(cd / && GOFLAGS= go mod download -json "golang.org/x/vulndb@${VULNDB_VERSION}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
		if [[ -z "$src" || ! -d "$src/data/osv" ]]; then
			echo "vulncheck: golang.org/x/vulndb@${VULNDB_VERSION} has no data/osv" >&2
			exit 1
		fi
		tmp="${cache}.tmp.$$"
		rm -rf "$tmp"
		go run "golang.org/x/vulndb/cmd/indexdb@${VULNDB_VERSION}" -vulns "$src/data/osv" -out "$tmp"
		rm -rf "$cache"
		mv "$tmp" "$cache"
	fi
	db="file://$cache"
fi
echo "vulncheck: $(go version | cut -d' ' -f3), database $db" >&2
exec go run "golang.org/x/vuln/cmd/govulncheck@${GOVULNCHECK_VERSION}" -db "$db" ./...
