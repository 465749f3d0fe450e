// The CapabilityReport informer's codec, with the dangerous-grants annotation it decodes.

#include "codec_input.h"
#include "controller/cluster_views.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  capwatch::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  capwatch::controller::ReportCodec codec;
  capwatch::fuzz::DecodeBothWays<capwatch::controller::ReportView>(
      codec, capwatch::fuzz::AsText(data, size), [](capwatch::controller::ReportView&) {});
  return 0;
}
