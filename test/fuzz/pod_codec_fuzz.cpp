// The Pod informer's codec (the Pod decoder with the informer's error handling) and the packed
// form the cache keeps each Pod in: every Pod decoded is packed, unpacked and packed again,
// which must give the same bytes, and releasing it must leave the string pool empty.

#include <cstdlib>
#include <cstring>

#include "codec_input.h"
#include "controller/pod_informer.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  capwatch::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  capwatch::controller::PodCodec codec;
  capwatch::fuzz::DecodeBothWays<capwatch::PodView>(
      codec, capwatch::fuzz::AsText(data, size), [&](capwatch::PodView& pod) {
        auto packed = codec.Pack(pod);
        auto again = codec.Pack(*codec.Unpack(packed));
        if (packed.size() != again.size() ||
            std::memcmp(packed.data(), again.data(), packed.size()) != 0) {
          std::abort();
        }
        (void)codec.ResourceVersion(packed);
        codec.Release(packed);
        codec.Release(again);
        if (codec.pooled_strings() != 0) std::abort();
      });
  return 0;
}
