#!/usr/bin/env bash
# Installs the system packages voucher-ledger needs to build and test, if missing:
#   libclang-dev      bindgen for librocksdb-sys
#   protobuf-compiler protoc for tonic-prost-build
#   g++               the RocksDB C++ sources
#   python3-venv      the gRPC interoperability test (a Python grpcio client)
#   openssl, procps   the TLS test's certificates; `kill` for the SIGTERM test
#   chromium          the report page's browser test (headless, offline)
#   fonts-noto-cjk    Chinese labels in the report's screenshot
#   prometheus        `promtool check metrics` for the /metrics test
# Uses apt-get (Debian/Ubuntu); needs root or sudo. Never downloads binaries.
set -euo pipefail

missing=()
have_package() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for package in libclang-dev protobuf-compiler g++ python3-venv openssl procps chromium fonts-noto-cjk prometheus; do
  have_package "$package" || missing+=("$package")
done
command -v cargo >/dev/null || { echo "cargo is not installed: install Rust with rustup first" >&2; exit 1; }

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing missing system packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}"
