#!/usr/bin/env bash
# fetch-ort.sh — put ONNX Runtime's Linux x64 CPU shared library where
# radflow looks for it, and print its absolute path.
#
# Source: the npm package onnxruntime-node@1.30.0 (Microsoft, MIT licence),
# file bin/napi-v6/linux/x64/libonnxruntime.so.1, fetched with `npm pack`.
# Destination (radflow's default lookup path, see internal/inference):
#   ${RADFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/radflow}/onnxruntime-1.30.0/libonnxruntime.so.1
# The file's SHA-256 is pinned below; a mismatch is an error and nothing is
# left in the cache. Idempotent: when the verified file is already cached
# it only prints the path.
#
# Usage: scripts/fetch-ort.sh          # prints /abs/path/libonnxruntime.so.1
#        RADFLOW_ORT_LIB=$(scripts/fetch-ort.sh) radflow infer ...
set -euo pipefail

ORT_VERSION=1.30.0
NPM_PACKAGE="onnxruntime-node@${ORT_VERSION}"
MEMBER="package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23

case "$(uname -s)/$(uname -m)" in
Linux/x86_64 | Linux/amd64) ;;
*)
	echo "fetch-ort.sh: only Linux x86_64 is handled; install ONNX Runtime >= 1.24 yourself and set RADFLOW_ORT_LIB" >&2
	exit 2
	;;
esac

cache_root="${RADFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/radflow}"
dest_dir="${cache_root}/onnxruntime-${ORT_VERSION}"
dest="${dest_dir}/libonnxruntime.so.1"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$dest" ]]; then
	if [[ "$(sha_of "$dest")" == "$SHA256" ]]; then
		realpath "$dest"
		exit 0
	fi
	echo "fetch-ort.sh: cached $dest has the wrong SHA-256; fetching again" >&2
fi

command -v npm >/dev/null || {
	echo "fetch-ort.sh: npm not found (needed to fetch ${NPM_PACKAGE})" >&2
	exit 1
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$NPM_PACKAGE" >/dev/null)
tgz="$(ls "$tmp"/onnxruntime-node-*.tgz)"
tar -xzf "$tgz" -C "$tmp" "$MEMBER"

got="$(sha_of "$tmp/$MEMBER")"
if [[ "$got" != "$SHA256" ]]; then
	echo "fetch-ort.sh: SHA-256 mismatch for $MEMBER from ${NPM_PACKAGE}: got $got, want $SHA256" >&2
	exit 1
fi

mkdir -p "$dest_dir"
# Install atomically so a concurrent reader never sees a partial file.
install -m 0644 "$tmp/$MEMBER" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
realpath "$dest"
