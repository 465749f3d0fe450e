// The watch stream: bytes chunked as the wire chunks them, split into lines (a JSON watch) and
// into length-prefixed frames (a protobuf watch), each line and frame decoded into an event and
// its object's resourceVersion read (and, for an ERROR, its Status). The first input byte
// chooses the chunk size; the lines and frames must not depend on it.

#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "kube/api_status.h"
#include "kube/watch_decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const std::string_view stream = capwatch::fuzz::AsText(data + 1, size - 1);

  std::vector<std::string> whole;
  capwatch::kube::LineSplitter one;
  one.Feed(stream, [&](std::string_view line) { whole.emplace_back(line); });

  std::vector<std::string> chunked;
  capwatch::kube::LineSplitter split;
  for (std::size_t at = 0; at < stream.size(); at += chunk) {
    split.Feed(stream.substr(at, chunk), [&](std::string_view line) { chunked.emplace_back(line); });
  }
  // However the stream was chunked, the same lines and the same unfinished tail.
  if (whole != chunked || one.pending_bytes() != split.pending_bytes()) std::abort();

  std::vector<std::string> frames, chunked_frames;
  capwatch::kube::FrameSplitter one_framer, framer;
  const bool framed = one_framer.Feed(stream, [&](std::string_view f) { frames.emplace_back(f); });
  bool chunked_ok = true;
  for (std::size_t at = 0; at < stream.size() && chunked_ok; at += chunk) {
    chunked_ok = framer.Feed(stream.substr(at, chunk),
                             [&](std::string_view f) { chunked_frames.emplace_back(f); });
  }
  if (framed != chunked_ok || (framed && (frames != chunked_frames ||
                                          one_framer.pending_bytes() != framer.pending_bytes()))) {
    std::abort();
  }
  whole.insert(whole.end(), frames.begin(), frames.end());

  capwatch::kube::WatchEventDecoder decoder;
  for (const std::string& line : whole) {
    if (auto event = decoder.Decode(line); event.ok()) {
      (void)capwatch::kube::WatchEventTypeName(event->type);
      (void)capwatch::kube::ResourceVersionOf(event->object);
      if (event->type == capwatch::kube::WatchEventType::kError) {
        (void)capwatch::kube::ApiStatus::FromResponse(0, event->object).ToString();
        (void)capwatch::kube::ApiStatus::CodeOf(event->object);
      }
    }
  }
  return 0;
}
