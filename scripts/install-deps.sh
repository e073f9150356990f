#!/usr/bin/env bash
# Installs what radflow needs to build, test and run on Debian/Ubuntu:
# the C codec libraries (cgo); dcmtk, dicom3tools (dciodvfy) and GDCM's tools
# (gdcmanon) for interoperability tests; openssl and curl for the TLS and
# STOW-RS tests; PyTorch/ONNX/pydicom from Debian for the training tools. Idempotent;
# a no-op when everything is present. Uses sudo when not root.
set -euo pipefail

pkgs=(
  build-essential pkg-config
  libgdcm-dev libcharls-dev libopenjp2-7-dev libjpeg62-turbo-dev
  dcmtk dicom3tools libgdcm-tools openssl curl
  python3-torch python3-onnx python3-pil python3-numpy python3-yaml python3-pydicom
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# npm fetches the ONNX Runtime library (scripts/fetch-ort.sh); keep any npm already there.
command -v npm >/dev/null 2>&1 || missing+=(npm)

# libjpeg62-turbo-dev is Debian's name; Ubuntu ships libjpeg-turbo8-dev.
if [ "${#missing[@]}" -gt 0 ] && ! apt-cache show libjpeg62-turbo-dev >/dev/null 2>&1; then
  missing=("${missing[@]/libjpeg62-turbo-dev/libjpeg-turbo8-dev}")
fi

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "install-deps: missing packages (${missing[*]}); run as root or install them: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
