#!/usr/bin/env bash
# Debian packages the cross-checks need: headless Chromium (the report renders) and dicom3tools
# (dciodvfy validates DICOM SEG/SR). Installs only what is missing.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
