// The JSON log line formatter: any bytes as the message and any instant as the time. The line
// must be one line of valid JSON, and must give a valid UTF-8 message back byte for byte.

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "base/json_log_line.h"
#include "fuzz_input.h"

namespace {

bool IsUtf8(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();  // strict: throws on bytes that are not UTF-8
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The first 8 bytes, when there are, are the time in nanoseconds since 1970 (any of them).
  std::int64_t nanos = 0;
  if (size >= sizeof(nanos)) {
    std::memcpy(&nanos, data, sizeof(nanos));
    data += sizeof(nanos);
    size -= sizeof(nanos);
  }
  const std::chrono::system_clock::time_point time{std::chrono::nanoseconds(nanos)};
  const std::string message(capwatch::fuzz::AsText(data, size));

  const std::string line = capwatch::FormatJsonLogLine(time, "info", message);
  if (line.empty() || line.find('\n') != line.size() - 1) std::abort();  // one record, one line
  const auto doc = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("msg") || !doc["msg"].is_string()) std::abort();
  if (IsUtf8(message) && doc["msg"].get<std::string>() != message) std::abort();
  return 0;
}
