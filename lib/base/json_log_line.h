#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace capwatch {

// One log record as a line of JSON: {"time":"…","level":"…","msg":"…"} and a newline.
// Never throws and never drops the record: bytes that are not UTF-8 become U+FFFD, control
// characters are escaped, and if even memory runs out a fixed line says so.
std::string FormatJsonLogLine(std::chrono::system_clock::time_point time, std::string_view level,
                              std::string_view message) noexcept;

// Appends `text` to `out` as the inside of a JSON string (no quotes), as above.
void AppendJsonEscaped(std::string& out, std::string_view text);

}  // namespace capwatch
