// The CapabilityPolicy informer's codec: JSON from the API server, re-read by the policy
// parser; a spec the parser cannot take makes the policy invalid, not the informer stop.

#include "codec_input.h"
#include "controller/cluster_views.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  capwatch::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  capwatch::controller::PolicyCodec codec;
  capwatch::fuzz::DecodeBothWays<capwatch::controller::PolicyView>(
      codec, capwatch::fuzz::AsText(data, size), [](capwatch::controller::PolicyView&) {});
  return 0;
}
