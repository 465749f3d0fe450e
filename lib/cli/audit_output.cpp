#include <algorithm>
#include <iomanip>
#include <ostream>

#include "cli/audit_result.h"
#include "cli/commands.h"

namespace capwatch {
namespace {

using nlohmann::json;

const char* Colour(Severity s) {
  switch (s) {
    case Severity::kCritical:
      return "\033[1;31m";
    case Severity::kHigh:
      return "\033[31m";
    case Severity::kMedium:
      return "\033[33m";
    case Severity::kLow:
      return "\033[36m";
    case Severity::kNone:
      return "";
  }
  return "";
}

std::string WorkloadName(const ManifestWorkload& w) {
  return w.namespace_name + "/" + w.ref.kind + "/" + w.ref.name;
}

// SARIF levels: the severities a code-scanning UI shows as errors, warnings and notes.
const char* SarifLevel(Severity s) {
  switch (s) {
    case Severity::kCritical:
    case Severity::kHigh:
      return "error";
    case Severity::kMedium:
      return "warning";
    default:
      return "note";
  }
}

}  // namespace

void WriteTable(const AuditOutput& audit, std::ostream& out, bool colour) {
  struct Row {
    std::string workload, container, severity, rule, capability, message;
    Severity level;
  };
  std::vector<Row> rows;
  int compliant = 0, violations = 0, exempted = 0;
  for (const auto& aw : audit.workloads) {
    if (aw.report["summary"]["compliant"].get<bool>()) ++compliant;
    for (const auto& f : aw.evaluation.findings) {
      if (f.exempt) {
        ++exempted;
        continue;
      }
      ++violations;
      rows.push_back({WorkloadName(*aw.workload), f.container.empty() ? "(pod)" : f.container,
                      std::string(SeverityName(f.severity)), std::string(RuleId(f.rule)),
                      f.capability.empty() ? "-" : f.capability, f.message, f.severity});
    }
  }
  if (!rows.empty()) {
    std::size_t w[5] = {8, 9, 8, 4, 10};
    for (const auto& r : rows) {
      w[0] = std::max(w[0], r.workload.size());
      w[1] = std::max(w[1], r.container.size());
      w[2] = std::max(w[2], r.severity.size());
      w[3] = std::max(w[3], r.rule.size());
      w[4] = std::max(w[4], r.capability.size());
    }
    auto cell = [&](const std::string& s, std::size_t width) {
      out << std::left << std::setw(static_cast<int>(width + 2)) << s;
    };
    cell("WORKLOAD", w[0]);
    cell("CONTAINER", w[1]);
    cell("SEVERITY", w[2]);
    cell("RULE", w[3]);
    cell("CAPABILITY", w[4]);
    out << "MESSAGE\n";
    for (const auto& r : rows) {
      cell(r.workload, w[0]);
      cell(r.container, w[1]);
      if (colour) out << Colour(r.level);
      cell(r.severity, w[2]);
      if (colour) out << "\033[0m";
      cell(r.rule, w[3]);
      cell(r.capability, w[4]);
      out << r.message << "\n";
    }
    out << "\n";
  }
  out << audit.workloads.size() << " workload(s): " << compliant << " compliant, "
      << audit.workloads.size() - static_cast<std::size_t>(compliant) << " with findings; "
      << violations << " finding(s)";
  if (exempted > 0) out << ", " << exempted << " exempted";
  out << "\n";
}

void WriteJson(const AuditOutput& audit, std::ostream& out) {
  json list = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", json::array()}};
  for (const auto& aw : audit.workloads) list["items"].push_back(aw.report);
  out << list.dump(2) << "\n";
}

void WriteSarif(const AuditOutput& audit, std::ostream& out) {
  json rules = json::array();
  for (int i = 0; i < kRuleCount; ++i) {
    const RuleInfo& info = InfoOf(static_cast<Rule>(i));
    rules.push_back({{"id", info.id},
                     {"name", info.title},
                     {"shortDescription", {{"text", info.title}}},
                     {"fullDescription", {{"text", info.description}}},
                     {"helpUri", "https://capwatch.io/docs/rules#" + std::string(info.id)},
                     {"help", {{"text", info.description}}}});
  }
  json results = json::array();
  for (const auto& aw : audit.workloads) {
    const ManifestWorkload& w = *aw.workload;
    for (const auto& f : aw.evaluation.findings) {
      int line = w.source.line;
      if (auto it = w.container_lines.find(f.container); it != w.container_lines.end()) {
        line = it->second;
      }
      json physical = {{"artifactLocation", {{"uri", w.source.file}}}};
      if (line > 0) physical["region"] = {{"startLine", line}};
      json result = {
          {"ruleId", RuleId(f.rule)},
          {"ruleIndex", static_cast<int>(f.rule)},
          {"level", SarifLevel(f.severity)},
          {"message", {{"text", WorkloadName(w) + ": " + f.message + ". Fix: " + f.remediation}}},
          {"locations",
           json::array({{{"physicalLocation", physical},
                         {"logicalLocations",
                          json::array({{{"fullyQualifiedName",
                                         WorkloadName(w) + (f.container.empty()
                                                                ? std::string()
                                                                : "/" + f.container)}}})}}})},
          {"properties",
           {{"severity", SeverityName(f.severity)},
            {"policy", f.policy},
            {"capability", f.capability},
            {"container", f.container}}}};
      if (f.exempt && f.exemption) {
        result["suppressions"] =
            json::array({{{"kind", "external"},
                          {"justification", f.exemption->name + ": " + f.exemption->reason}}});
      }
      results.push_back(std::move(result));
    }
  }
  json sarif = {{"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
                {"version", "2.1.0"},
                {"runs", json::array({{{"tool",
                                        {{"driver",
                                          {{"name", "capwatch"},
                                           {"version", CapwatchVersion()},
                                           {"informationUri", "https://capwatch.io"},
                                           {"rules", rules}}}}},
                                       {"results", results}}})}};
  out << sarif.dump(2) << "\n";
}

}  // namespace capwatch
