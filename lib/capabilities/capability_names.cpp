#include "capabilities/capability_names.h"

#include <algorithm>
#include <array>
#include <vector>

namespace capwatch {
namespace {

constexpr std::string_view kWhitespace = " \t\r\n";

std::string_view Trim(std::string_view s) {
  const auto begin = s.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) return {};
  const auto end = s.find_last_not_of(kWhitespace);
  return s.substr(begin, end - begin + 1);
}

// Upper-cases into a fixed buffer; capability names are short, longer input is unknown.
constexpr std::size_t kMaxName = 40;

bool Normalise(std::string_view written, std::array<char, kMaxName>& buf, std::string_view& out) {
  std::string_view s = Trim(written);
  if (s.size() > kMaxName) return false;
  std::size_t n = 0;
  for (char c : s) buf[n++] = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  out = std::string_view(buf.data(), n);
  if (out.size() > 4 && out.substr(0, 4) == "CAP_") out.remove_prefix(4);
  return true;
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

bool CapabilityName::is_canonical_spelling() const {
  switch (kind) {
    case Kind::kAll:
      return written == "ALL";
    case Kind::kCapability:
      return written == CapabilityByNumber(number).name;
    case Kind::kUnknown:
      return false;
  }
  return false;
}

CapabilityName ParseCapabilityName(std::string_view written) {
  CapabilityName result;
  result.written = written;
  std::array<char, kMaxName> buf{};
  std::string_view name;
  if (!Normalise(written, buf, name)) return result;
  if (name == "ALL") {
    result.kind = CapabilityName::Kind::kAll;
    return result;
  }
  if (auto number = CapabilityNumber(name)) {
    result.kind = CapabilityName::Kind::kCapability;
    result.number = *number;
  }
  return result;
}

std::string_view SuggestCapability(std::string_view unknown) {
  std::array<char, kMaxName> buf{};
  std::string_view name;
  if (!Normalise(unknown, buf, name) || name.empty()) return {};
  std::string_view best;
  std::size_t best_score = name.size();
  for (const auto& info : Catalog()) {
    // A prefix ("NET_BIND" for NET_BIND_SERVICE) is the commonest typo; count it as close.
    std::size_t score = EditDistance(name, info.name);
    if (name.size() >= 4 && info.name.substr(0, name.size()) == name) score = 1;
    if (score < best_score) {
      best_score = score;
      best = info.name;
    }
  }
  return best_score <= std::max<std::size_t>(2, name.size() / 4) ? best : std::string_view{};
}

}  // namespace capwatch
