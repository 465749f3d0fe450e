// The simdjson Pod decoder on one Pod and on a list body (what list and watch responses and
// `kubectl get -o json` hand it). It promises not to throw and to fail only on input that is
// no Pod at all.

#include "fuzz_input.h"
#include "workload/pod_decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json = capwatch::fuzz::AsText(data, size);
  // One decoder for the whole run, as one per thread in the controller: its buffers are reused
  // between inputs, which is what a stale-state bug would need.
  static capwatch::PodDecoder decoder;

  capwatch::PodView pod;
  (void)decoder.DecodePod(json, pod);

  capwatch::PodDecoder::ListMeta meta;
  std::size_t pods = 0, skipped = 0;
  // With an item-error callback (the informer) and without (audit): both paths.
  (void)decoder.DecodePodList(
      json, [&](capwatch::PodView&&) { ++pods; }, meta,
      [&](const capwatch::FieldError&) { ++skipped; });
  (void)decoder.DecodePodList(json, [&](capwatch::PodView&&) { ++pods; }, meta);
  return 0;
}
