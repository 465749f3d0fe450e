#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz/ (clang, ASan + UBSan, leak detection on) and runs
# each one on a scratch copy of its seed corpus (test/fuzz/corpus/<target>/), so the repo's
# corpus does not grow. Fails on any crash, leak, sanitizer report, timeout or out-of-memory.
#
#   bash test/fuzz/run.sh                      every target for 10 s (what test/run.sh runs)
#   bash test/fuzz/run.sh --seconds 60         every target for 60 s
#   bash test/fuzz/run.sh --runs 1000000       every target for 1,000,000 executions (the long run)
#   bash test/fuzz/run.sh --jobs 2 ...         two targets at a time
#   bash test/fuzz/run.sh ... pod_decoder kubeconfig     only these targets
#
# Prints one line per target: executions, executions per second, coverage (libFuzzer's cov: and
# ft: at the end), corpus size and wall time. A failing target's log and crashing input are
# kept in the scratch directory, whose path is printed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${root}"
lock="/tmp/capwatch-build.lock"

seconds=10
runs=""
jobs=1
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; runs=""; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

# Target → dictionary (test/fuzz/dict/).
declare -A dict=(
  [pod_decoder]=pod [pod_codec]=pod [pod_proto]=proto [watch_decoder]=pod [manifest_reader]=manifest
  [policy_parser]=policy [policy_codec]=policy [kubeconfig]=kubeconfig
  [metadata_codec]=object [namespace_codec]=object [report_codec]=object [json_log_line]=log
)
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(pod_decoder pod_codec pod_proto watch_decoder manifest_reader policy_parser kubeconfig
           metadata_codec namespace_codec policy_codec report_codec json_log_line)
fi
for t in "${targets[@]}"; do
  [[ -n "${dict[$t]:-}" ]] || { echo "fuzz: no target ${t}" >&2; exit 2; }
done

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ is missing (bash test/install-deps.sh installs it)" >&2
  exit 1
fi
echo "fuzz: building the fuzz targets in build-fuzz/ (waiting for ${lock})"
# -O1 -g without NDEBUG: fast enough to fuzz, with asserts on and readable stacks.
flock "${lock}" env CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja \
  -DCAPWATCH_FUZZ=ON -DCAPWATCH_WERROR=ON -DCAPWATCH_BUILD_TESTS=OFF \
  -DCAPWATCH_BUILD_BENCHMARKS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" >/dev/null
flock "${lock}" nice cmake --build build-fuzz --target capwatch_fuzz -j 2

scratch="$(mktemp -d "${TMPDIR:-/tmp}/capwatch-fuzz.XXXXXX")"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer || true)}"

# Runs one target; its log is ${scratch}/<target>.log and its summary ${scratch}/<target>.line.
run_target() {
  local t="$1" dir="${scratch}/$1"
  mkdir -p "${dir}/corpus"
  cp test/fuzz/corpus/"${t}"/* "${dir}/corpus/"
  local limit=(-max_total_time="${seconds}")
  # A wall-clock bound over libFuzzer's own: a target stuck past it (LeakSanitizer scanning a
  # heap at its out-of-memory limit can take many minutes) fails instead of hanging the run.
  local wall_limit=$((seconds * 2 + 120))
  if [[ -n "${runs}" ]]; then
    limit=(-runs="${runs}")
    wall_limit=$((6 * 3600))
  fi
  local start end rc=0
  start=$(date +%s.%N)
  # -max_len: Pods and policies of the seeds are under 2 KB; 4 KB leaves room to grow them.
  # -timeout: one input taking 25 s is a hang (and a finding), not slowness.
  timeout -k 10 "${wall_limit}" "build-fuzz/test/fuzz/${t}_fuzz" "${dir}/corpus" -dict="test/fuzz/dict/${dict[$t]}.dict" \
    -max_len=4096 -rss_limit_mb=2048 -timeout=25 -detect_leaks=1 -print_final_stats=1 \
    -artifact_prefix="${dir}/" "${limit[@]}" >"${scratch}/${t}.log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  local execs speed done_line cov ft corp wall
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "${scratch}/${t}.log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "${scratch}/${t}.log" | tail -1)
  done_line=$(grep -E '^#[0-9]+' "${scratch}/${t}.log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"${done_line}")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"${done_line}")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"${done_line}")
  wall=$(awk -v s="${start}" -v e="${end}" 'BEGIN { printf "%.0f", e - s }')
  local verdict="ok"
  if [[ ${rc} -ne 0 ]] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|==ERROR|deadly signal|Test unit written' "${scratch}/${t}.log"; then
    verdict="FAILED (exit ${rc}; log ${scratch}/${t}.log)"
  fi
  printf '%-16s %10s execs %7s exec/s  cov %5s  ft %6s  corp %-10s %5ss  %s\n' "${t}" \
    "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${wall}" "${verdict}" \
    >"${scratch}/${t}.line"
}

what="${seconds} s each"
[[ -n "${runs}" ]] && what="${runs} executions each"
echo "fuzz: ${#targets[@]} targets, ${what}, ${jobs} at a time (scratch ${scratch})"
running=0
for t in "${targets[@]}"; do
  if [[ ${running} -ge ${jobs} ]]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_target "${t}" &
  running=$((running + 1))
done
wait

failed=0
for t in "${targets[@]}"; do
  cat "${scratch}/${t}.line"
  if ! grep -q ' ok$' "${scratch}/${t}.line"; then
    failed=1
    grep -E -A12 'ERROR:|runtime error:|deadly signal' "${scratch}/${t}.log" | head -40 || true
  fi
done
if [[ ${failed} -ne 0 ]]; then
  echo "fuzz: FAILED; logs and crashing inputs in ${scratch}" >&2
  exit 1
fi
rm -rf "${scratch}"
echo "fuzz: no crash, leak or sanitizer report"
