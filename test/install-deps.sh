#!/usr/bin/env bash
# Installs every Debian package capwatch needs to build, test and run its demo.
# Idempotent: packages already present are left alone, and apt is only asked when
# something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  libcpprest-dev libssl-dev zlib1g-dev libboost-system-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libsimdjson-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  clang-format clang-tidy openssl jq procps prometheus
  # The fuzz targets (test/fuzz): clang is clang-14 on bookworm, whose libFuzzer and sanitizer
  # runtimes are in libclang-rt-14-dev; llvm-14 has llvm-symbolizer for readable reports.
  clang libclang-rt-14-dev llvm-14
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
