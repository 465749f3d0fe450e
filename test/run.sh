#!/usr/bin/env bash
# The one test command (README, and what .ci/run calls). On a fresh machine it installs what
# the build needs, then:
#   1. builds capwatch with warnings as errors and runs the unit tests;
#   2. builds the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer and
#      runs them;
#   3. builds the unit and controller tests under ThreadSanitizer and runs them;
#   4. builds the libFuzzer targets with clang and runs each for 10 s (test/fuzz/README.md);
#   5. builds the real control plane (cached outside the repo) and runs the end-to-end suite
#      against it.
#
#   bash test/run.sh                  everything
#   CAPWATCH_SKIP_SANITIZE=1 ...      leave out steps 2 and 3 (local iteration)
#   CAPWATCH_SKIP_FUZZ=1 ...          leave out step 4
#   CAPWATCH_SKIP_E2E=1 ...           leave out step 5
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
lock="/tmp/capwatch-build.lock"

bash test/install-deps.sh

echo "run.sh: building capwatch in build/ (waiting for ${lock})"
flock "${lock}" cmake -S . -B build -G Ninja -DCAPWATCH_WERROR=ON >/dev/null
flock "${lock}" cmake --build build

echo "run.sh: unit tests"
ctest --test-dir build --output-on-failure -j 2

echo "run.sh: docs/capabilities.md's catalog table matches capwatch catalog"
CAPWATCH=build/controller/capwatch bash docs/gen-catalog.sh --check

# The engine beside OPA at its smallest (the full run is `bash test/bench/opa.sh`): both
# programs build and agree to run on the same Pods file, or this fails.
echo "run.sh: benchmark smoke, the engine beside OPA on 500 Pods (test/bench/README.md)"
bash test/bench/opa.sh -pods 500 -min-time 0.2

# The controller against the simulated API server at 20,000 Pods (the full size is
# `--pods 1000000`): every workload gets its report, or this fails.
echo "run.sh: benchmark smoke, the controller against a simulated cluster of 20,000 Pods"
build/test/bench/capwatch_simulated_cluster_bench --pods 20000

if [[ "${CAPWATCH_SKIP_SANITIZE:-0}" != "1" ]]; then
  echo "run.sh: unit tests under ASan + UBSan, in build-asan/ (waiting for ${lock})"
  flock "${lock}" cmake -S . -B build-asan -G Ninja -DCAPWATCH_WERROR=ON -DCAPWATCH_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=Debug -DCAPWATCH_BUILD_BENCHMARKS=OFF >/dev/null
  flock "${lock}" cmake --build build-asan
  ctest --test-dir build-asan --output-on-failure -j 2

  echo "run.sh: unit and controller tests under ThreadSanitizer, in build-tsan/ (waiting for ${lock})"
  # Optimised: ThreadSanitizer at -O0 makes the 100,000-key churn test take minutes.
  flock "${lock}" cmake -S . -B build-tsan -G Ninja -DCAPWATCH_WERROR=ON -DCAPWATCH_SANITIZE_THREAD=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCAPWATCH_BUILD_BENCHMARKS=OFF >/dev/null
  flock "${lock}" cmake --build build-tsan --target capwatch_unit_tests capwatch_controller_tests
  # The kube tests stay out: cpprestsdk and Boost.Asio are not built with ThreadSanitizer, so
  # their threads would be reported without their synchronisation being seen.
  for t in capwatch_unit_tests capwatch_controller_tests; do
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "build-tsan/test/unit/${t}" --gtest_brief=1
  done
fi

if [[ "${CAPWATCH_SKIP_FUZZ:-0}" != "1" ]]; then
  echo "run.sh: fuzz targets, 10 s each, in build-fuzz/"
  bash test/fuzz/run.sh --seconds 10
fi

if [[ "${CAPWATCH_SKIP_E2E:-0}" == "1" ]]; then
  echo "run.sh: CAPWATCH_SKIP_E2E=1, end-to-end suite not run"
  exit 0
fi

echo "run.sh: end-to-end suite against a real kube-apiserver"
bash test/e2e/run.sh build/controller/capwatch

if [[ "${CAPWATCH_SKIP_SCALE:-0}" == "1" ]]; then
  echo "run.sh: CAPWATCH_SKIP_SCALE=1, scale smoke not run"
  exit 0
fi
# The scale harness at its smallest size (10,000 Pods, 1,000 ReplicaSets) on its own control
# plane: every workload gets its report and a restart writes nothing, or this fails. The full
# sizes are `bash test/e2e/scale.sh build/controller/capwatch -sizes 10000,50000,100000`.
echo "run.sh: scale smoke, 10,000 Pods beside a client-go informer (test/bench/README.md)"
bash test/e2e/scale.sh build/controller/capwatch -sizes 10000
