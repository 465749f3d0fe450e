// Pods in protobuf: the Pod informer's codec on a protobuf body (as a list page and as one
// Pod), the protobuf list splitter cut where the first byte says, and a protobuf Status. Every
// Pod decoded goes through the cache's packed form and back. The splitter's pages must decode
// wherever the whole body does, and hold exactly the items the splitter counted.

#include <cstdlib>
#include <cstring>

#include "codec_input.h"
#include "controller/pod_informer.h"
#include "kube/api_status.h"
#include "kube/list_splitter.h"
#include "workload/pod_proto_decoder.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  capwatch::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = capwatch::fuzz::AsText(data, size);
  capwatch::controller::PodCodec codec;
  capwatch::fuzz::DecodeBothWays<capwatch::PodView>(codec, text, [&](capwatch::PodView& pod) {
    auto packed = codec.Pack(pod);
    auto again = codec.Pack(*codec.Unpack(packed));
    if (packed.size() != again.size() ||
        std::memcmp(packed.data(), again.data(), packed.size()) != 0) {
      std::abort();
    }
    codec.Release(packed);
    codec.Release(again);
    if (codec.pooled_strings() != 0) std::abort();
  });
  (void)capwatch::kube::ApiStatus::FromResponse(0, text).ToString();

  const capwatch::PodProtoDecoder decoder;
  std::size_t items = 0;
  auto count = [&items](capwatch::PodView&&) { ++items; };
  auto count_error = [&items](const capwatch::FieldError&) { ++items; };
  capwatch::PodDecoder::ListMeta whole_meta;
  const bool whole_ok = decoder.DecodePodList(text, count, whole_meta, count_error).ok();

  const std::size_t page_bytes = size > 0 ? static_cast<std::uint8_t>(data[0]) * 16u + 1 : 1;
  const std::size_t cut = size > 1 ? static_cast<std::uint8_t>(data[1]) % size : 0;
  capwatch::kube::ProtoListSplitter splitter(page_bytes);
  bool pages_ok = true;
  std::size_t paged_items = 0;
  auto page = [&](std::string_view p) {
    capwatch::PodDecoder::ListMeta meta;
    const std::size_t before = items;
    pages_ok = decoder.DecodePodList(p, count, meta, count_error).ok() && pages_ok;
    paged_items += items - before;
    return true;
  };
  const bool split = splitter.Feed(text.substr(0, cut), page) &&
                     splitter.Feed(text.substr(cut), page) && splitter.Finish(page);
  if (split && whole_ok && (!pages_ok || paged_items != splitter.items())) std::abort();
  return 0;
}
