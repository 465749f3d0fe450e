#pragma once

#include <string>
#include <string_view>

namespace capwatch {

// 32 hex digits of FNV-1a in two variants (128 bits): a change detector for the content-hash
// annotations capwatch compares before writing, not a security boundary.
std::string HashText(std::string_view text);

}  // namespace capwatch
