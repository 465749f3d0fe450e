// CapabilityPolicy text (YAML, and JSON, which is YAML), as `capwatch audit --policy` reads it:
// bad input is reported in the result, never thrown.

#include <string>

#include "fuzz_input.h"
#include "policy/policy_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(capwatch::fuzz::AsText(data, size));
  (void)capwatch::ParsePolicies(text);
  return 0;
}
