#include "base/text_hash.h"

#include <cstdint>
#include <cstdio>

namespace capwatch {
namespace {

std::string Hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::string HashText(std::string_view text) {
  std::uint64_t a = 14695981039346656037ULL, b = 0x9e3779b97f4a7c15ULL;
  for (unsigned char ch : text) {
    a = (a ^ ch) * 1099511628211ULL;
    b = (b ^ ch) * 0x100000001b3ULL + 0x51ULL;
  }
  return Hex(a) + Hex(b);
}

}  // namespace capwatch
