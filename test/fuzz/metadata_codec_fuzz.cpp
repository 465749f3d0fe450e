// The ReplicaSet and Job informers' codec: PartialObjectMetadata lists and objects.

#include "codec_input.h"
#include "controller/metadata_informer.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  capwatch::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  capwatch::controller::MetadataCodec codec;
  capwatch::fuzz::DecodeBothWays<capwatch::controller::ObjectMetaView>(
      codec, capwatch::fuzz::AsText(data, size), [](capwatch::controller::ObjectMetaView&) {});
  return 0;
}
