#!/usr/bin/env bash
# capwatch's engine beside OPA on the same Pods (test/bench/README.md, "The engine against OPA").
# Prints each side's µs per Pod and the ratio. A benchmark, not a test: it fails only when one
# of the programs fails.
#
#   bash test/bench/opa.sh                         20,000 generated Pods, 3 s a measurement
#   bash test/bench/opa.sh -file pods.json         your cluster: kubectl get pods -A -o json > pods.json
#   bash test/bench/opa.sh -pods 500 -min-time 0.2 the smoke in bash test/run.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
lock="/tmp/capwatch-build.lock"
pods=20000
file=""
min_time=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    -pods) pods="$2"; shift 2 ;;
    -file)
      if [[ ! -r "$2" ]]; then echo "opa.sh: cannot read $2" >&2; exit 2; fi
      file="$(realpath "$2")"; shift 2 ;;
    -min-time) min_time="$2"; shift 2 ;;
    *) echo "opa.sh: unknown argument $1 (use -pods N, -file FILE, -min-time SECONDS)" >&2; exit 2 ;;
  esac
done
cd "${root}"

flock "${lock}" cmake -S . -B build -G Ninja -DCAPWATCH_WERROR=ON >/dev/null
flock "${lock}" cmake --build build --target capwatch_engine_bench
# The first build fetches OPA's module and its dependencies through the Go module proxy.
echo "opa.sh: building the OPA benchmark (test/bench/opa) into build/test/bench/opa-bench"
(cd test/bench/opa && GOTOOLCHAIN=local flock "${lock}" \
  go build -o "${root}/build/test/bench/opa-bench" .)

echo "opa.sh: building pod2proto (test/e2e/cmd/pod2proto), for the same Pods in protobuf"
(cd test/e2e && GOTOOLCHAIN=local flock "${lock}" \
  go build -o "${root}/build/test/bench/pod2proto" ./cmd/pod2proto)

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
if [[ -z "${file}" ]]; then
  file="${work}/pods.json"
  build/test/bench/capwatch_engine_bench --write_pods "${file}" --pods "${pods}"
fi

build/test/bench/pod2proto -in "${file}" -out "${work}/pods.pb"

# One core each, one after the other.
build/test/bench/capwatch_engine_bench --pods_json "${file}" --pods_proto "${work}/pods.pb" \
  --benchmark_filter='BM_DecodeAndEvaluate|BM_DecodeProtoAndEvaluate|BM_Evaluate$' \
  --benchmark_min_time="${min_time}" --decisions "${work}/capwatch.tsv" | tee "${work}/capwatch.txt"
build/test/bench/opa-bench -pods "${file}" -min-time "${min_time}s" \
  -decisions "${work}/opa.tsv" | tee "${work}/opa.txt"

us() { awk -v title="$2" 'index($0, title) { for (i = 1; i < NF; i++) if ($(i + 1) == "us/pod") { print $i; exit } }' "$1"; }
capwatch_default="$(us "${work}/capwatch.txt" "decode + evaluate  ")"
capwatch_guide="$(us "${work}/capwatch.txt" "decode + evaluate, guide policy")"
capwatch_proto="$(us "${work}/capwatch.txt" "protobuf decode + evaluate  ")"
capwatch_proto_guide="$(us "${work}/capwatch.txt" "protobuf decode + evaluate, guide")"
opa_parse_eval="$(us "${work}/opa.txt" "parse + eval")"
opa_eval="$(us "${work}/opa.txt" "  eval ")"
for v in capwatch_default capwatch_guide capwatch_proto capwatch_proto_guide opa_parse_eval opa_eval; do
  if [[ -z "${!v}" ]]; then echo "opa.sh: no figure for ${v} in the programs' output" >&2; exit 1; fi
done
echo
echo "capwatch beside OPA, µs per Pod, one core:"
awk -v d="${capwatch_default}" -v g="${capwatch_guide}" -v pd="${capwatch_proto}" \
  -v pg="${capwatch_proto_guide}" -v pe="${opa_parse_eval}" -v e="${opa_eval}" 'BEGIN {
  printf "  capwatch decode + evaluate, default policy   %8.2f\n", d
  printf "  capwatch decode + evaluate, guide policy     %8.2f\n", g
  printf "  the same from protobuf (how Pods are listed) %8.2f default, %.2f guide (%.0fx, %.0fx OPA parse + eval)\n", pd, pg, pe / pd, pe / pg
  printf "  OPA parse + eval, guide policy               %8.2f   (%.0fx capwatch default, %.0fx guide)\n", pe, pe / d, pe / g
  printf "  OPA eval of parsed input, guide policy       %8.2f   (%.0fx capwatch default, %.0fx guide)\n", e, e / d, e / g
  printf "  target: capwatch <= 4 us and >= 100x OPA parse + eval: %s\n", (d <= 4 && pe / d >= 100) ? "met" : "NOT met"
}'

# Where the two policies disagree, Pod by Pod: the Rego reads spec.containers as written, so
# it is compared with capwatch's findings on those containers.
echo
echo "the guide's policy, OPA beside capwatch, Pod by Pod:"
awk -F'\t' '
  NR == FNR { opa[$1] = ($2 > 0); why[$1] = $3; next }
  !($1 in opa) { missing++; next }
  {
    pods++
    if ($3 == opa[$1]) { agree++ }
    else if (opa[$1]) { if (opa_only++ < 2) opa_ex = opa_ex "\n      " $1 ": OPA says " why[$1] }
    else { if (capwatch_only++ < 2) capwatch_ex = capwatch_ex "\n      " $1 ": capwatch says " $4 }
    if ($2 && !$3) init_only++
  }
  END {
    if (missing > 0 || pods == 0) { print "  the two programs did not read the same Pods" > "/dev/stderr"; exit 1 }
    printf "  same verdict on spec.containers: %d of %d pods (%.1f %%)\n", agree, pods, 100 * agree / pods
    printf "  OPA denies, capwatch admits: %d%s\n", opa_only, opa_ex
    printf "  capwatch denies, OPA admits: %d%s\n", capwatch_only, capwatch_ex
    printf "  denied by capwatch for an init container alone (the Rego reads no initContainers): %d\n", init_only
  }' "${work}/opa.tsv" "${work}/capwatch.tsv"
