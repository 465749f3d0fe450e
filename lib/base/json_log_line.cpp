#include "base/json_log_line.h"

#include <cstdio>
#include <ctime>

#include "base/utf8.h"

namespace capwatch {

void AppendJsonEscaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t n = Utf8SequenceLength(text.substr(i));
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not UTF-8
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
}

std::string FormatJsonLogLine(std::chrono::system_clock::time_point time, std::string_view level,
                              std::string_view message) noexcept {
  try {
    const auto since = time.time_since_epoch();
    const std::time_t t = std::chrono::system_clock::to_time_t(
        std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::seconds>(since)));
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char when[96];
    std::snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(millis < 0 ? millis + 1000 : millis));
    std::string line;
    line.reserve(message.size() + 64);
    line += "{\"time\":\"";
    line += when;
    line += "\",\"level\":\"";
    AppendJsonEscaped(line, level);
    line += "\",\"msg\":\"";
    AppendJsonEscaped(line, message);
    line += "\"}\n";
    return line;
  } catch (...) {
    // Only allocation can fail above; say that a record was lost rather than lose it silently.
    try {
      return "{\"level\":\"error\",\"msg\":\"capwatch: a log record could not be formatted\"}\n";
    } catch (...) {
      return {};
    }
  }
}

}  // namespace capwatch
