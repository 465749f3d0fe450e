// capwatch enforce: the ValidatingAdmissionPolicy and Binding the controller would keep for
// each CapabilityPolicy, printed offline (for GitOps: commit them, or diff them in review).
#include <iostream>

#include <nlohmann/json.hpp>

#include "base/read_file.h"
#include "base/rfc3339.h"
#include "cli/commands.h"
#include "enforce/admission_policy.h"
#include "policy/policy_parser.h"

namespace capwatch {
namespace {

constexpr std::string_view kEnforceUsage =
    "usage: capwatch enforce -f POLICY_FILE [-f ...] [--action Deny|Warn|Audit] [--now TIME]\n"
    "\n"
    "Prints, as one JSON List for kubectl apply -f -, the ValidatingAdmissionPolicy and\n"
    "ValidatingAdmissionPolicyBinding that make the API server enforce each CapabilityPolicy.\n"
    "\n"
    "  -f, --filename FILE  a file of CapabilityPolicy objects (- for standard input)\n"
    "  --action ACTION      Deny, Warn or Audit: the binding's validationActions (default: the\n"
    "                       policy's spec.enforcement.action, else Deny)\n"
    "  --now TIME           RFC 3339; exemptions that expire by then are left out (default: now)\n";

}  // namespace

int RunEnforce(const std::vector<std::string>& args, CommandIo& io) {
  std::vector<std::string> files;
  std::optional<EnforcementAction> action;
  Clock::time_point now = Clock::now();
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string* {
      if (i + 1 >= args.size()) {
        io.err << "capwatch enforce: " << a << " needs a value\n" << kEnforceUsage;
        return nullptr;
      }
      return &args[++i];
    };
    if (a == "-h" || a == "--help") {
      io.out << kEnforceUsage;
      return 0;
    } else if (a == "-f" || a == "--filename") {
      const std::string* v = value();
      if (v == nullptr) return kExitBadInput;
      files.push_back(*v);
    } else if (a == "--action") {
      const std::string* v = value();
      if (v == nullptr) return kExitBadInput;
      auto parsed = ParseEnforcementAction(*v);
      if (!parsed) {
        io.err << "capwatch enforce: --action " << *v << ": want Deny, Warn or Audit\n";
        return kExitBadInput;
      }
      action = *parsed;
    } else if (a == "--now") {
      const std::string* v = value();
      if (v == nullptr) return kExitBadInput;
      std::string why;
      auto t = ParseRfc3339(*v, &why);
      if (!t) {
        io.err << "capwatch enforce: --now " << *v << ": " << why << "\n";
        return kExitBadInput;
      }
      now = *t;
    } else {
      io.err << "capwatch enforce: unknown flag " << a << "\n" << kEnforceUsage;
      return kExitBadInput;
    }
  }
  if (files.empty()) {
    io.err << "capwatch enforce: no policy; give -f FILE\n" << kEnforceUsage;
    return kExitBadInput;
  }
  nlohmann::json items = nlohmann::json::array();
  bool bad = false;
  for (const auto& file : files) {
    std::string text;
    if (file == "-") {
      text.assign(std::istreambuf_iterator<char>(io.in), std::istreambuf_iterator<char>());
    } else if (auto read = ReadWholeFile(file); read.ok()) {
      text = std::move(read.value());
    } else {
      io.err << "capwatch enforce: " << read.error().ToString() << "\n";
      return kExitBadInput;
    }
    PolicyParseResult parsed = ParsePolicies(text);
    for (const auto& e : parsed.errors) {
      io.err << "capwatch enforce: " << file << ": " << e << "\n";
      bad = true;
    }
    for (const auto& [name, errors] : parsed.invalid) {
      for (const auto& e : errors) {
        io.err << "capwatch enforce: " << file << ", policy " << name << ": " << e.ToString()
               << "\n";
      }
      bad = true;
    }
    for (const auto& policy : parsed.policies) {
      GeneratedAdmission generated = GenerateAdmission(
          policy, action.value_or(policy.enforcement.value_or(EnforcementAction::kDeny)), now);
      items.push_back(std::move(generated.policy));
      items.push_back(std::move(generated.binding));
    }
  }
  if (bad) return kExitBadInput;
  io.out
      << nlohmann::json{{"apiVersion", "v1"}, {"kind", "List"}, {"items", std::move(items)}}.dump(2)
      << "\n";
  return 0;
}

}  // namespace capwatch
