// The Namespace informer's codec.

#include "codec_input.h"
#include "controller/cluster_views.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  capwatch::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  capwatch::controller::NamespaceCodec codec;
  capwatch::fuzz::DecodeBothWays<capwatch::controller::NamespaceView>(
      codec, capwatch::fuzz::AsText(data, size), [](capwatch::controller::NamespaceView&) {});
  return 0;
}
