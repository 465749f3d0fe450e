// The watch stream: bytes chunked as the wire chunks them, split into lines, each line decoded
// into an event and its object's resourceVersion read. The first input byte chooses the chunk
// size; the lines must not depend on it.

#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_input.h"
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

  capwatch::kube::WatchEventDecoder decoder;
  for (const std::string& line : whole) {
    if (auto event = decoder.Decode(line); event.ok()) {
      (void)capwatch::kube::WatchEventTypeName(event->type);
      (void)capwatch::kube::ResourceVersionOf(event->object);
    }
  }
  return 0;
}
