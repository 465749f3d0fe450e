// A manifest file as `capwatch audit -f` reads it (YAML or JSON, many documents, Lists), then
// the Pods attributed to their workloads: errors and warnings in the result, never a throw.

#include <string>

#include "fuzz_input.h"
#include "workload/manifest_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string content(capwatch::fuzz::AsText(data, size));
  capwatch::ManifestResult result;
  capwatch::ReadManifest("fuzz.yaml", content, capwatch::ManifestOptions{}, result);
  capwatch::AttributePods(result);
  return 0;
}
