#!/usr/bin/env bash
# The one test command (README, and what .ci/run calls): on a fresh machine it installs what
# the build needs, builds capwatch with warnings as errors, runs the unit tests, then builds the
# real control plane (cached outside the repo) and runs the end-to-end suite against it.
#
#   bash test/run.sh            everything
#   CAPWATCH_SKIP_E2E=1 ...     unit tests only (local iteration)
#   CAPWATCH_SANITIZE=1 ...     build and run the unit tests under ASan + UBSan
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
lock="/tmp/capwatch-build.lock"

bash test/install-deps.sh

build_dir="build"
cmake_args=(-G Ninja -DCAPWATCH_WERROR=ON)
if [[ "${CAPWATCH_SANITIZE:-0}" == "1" ]]; then
  build_dir="build-asan"
  cmake_args+=(-DCAPWATCH_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi

echo "run.sh: building capwatch in ${build_dir} (waiting for ${lock})"
flock "${lock}" cmake -S . -B "${build_dir}" "${cmake_args[@]}" >/dev/null
flock "${lock}" cmake --build "${build_dir}"

echo "run.sh: unit tests"
ctest --test-dir "${build_dir}" --output-on-failure -j 2

echo "run.sh: docs/capabilities.md's catalog table matches capwatch catalog"
CAPWATCH="${build_dir}/controller/capwatch" bash docs/gen-catalog.sh --check

if [[ "${CAPWATCH_SKIP_E2E:-0}" == "1" ]]; then
  echo "run.sh: CAPWATCH_SKIP_E2E=1, end-to-end suite not run"
  exit 0
fi

echo "run.sh: end-to-end suite against a real kube-apiserver"
bash test/e2e/run.sh "${build_dir}/controller/capwatch"
