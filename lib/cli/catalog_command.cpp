#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>

#include "capabilities/catalog.h"
#include "cli/commands.h"

#ifndef CAPWATCH_VERSION
#define CAPWATCH_VERSION "0.0.0-dev"
#endif

namespace capwatch {

std::string_view CapwatchVersion() { return CAPWATCH_VERSION; }

int RunCatalog(const std::vector<std::string>& args, CommandIo& io) {
  bool json_output = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string format;
    if ((args[i] == "-o" || args[i] == "--output") && i + 1 < args.size()) {
      format = args[++i];
    } else if (args[i].rfind("--output=", 0) == 0) {
      format = args[i].substr(9);
    } else if (args[i].rfind("-o", 0) == 0 && args[i].size() > 2) {
      format = args[i].substr(2);
    }
    if (format != "json" && format != "table") {
      io.err << "usage: capwatch catalog [-o table|json]\n";
      return 2;
    }
    json_output = format == "json";
  }
  const CapabilitySet containerd = RuntimeDefaultSet(Runtime::kContainerd);
  const CapabilitySet crio = RuntimeDefaultSet(Runtime::kCrio);
  const CapabilitySet baseline = BaselineAllowedAdds();
  if (json_output) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& c : Catalog()) {
      list.push_back({{"number", c.number},
                      {"name", c.name},
                      {"severity", SeverityName(c.severity)},
                      {"dangerous", c.dangerous},
                      {"containerdDefault", Contains(containerd, c.number)},
                      {"crioDefault", Contains(crio, c.number)},
                      {"baselineAllows", Contains(baseline, c.number)},
                      {"reason", c.reason}});
    }
    io.out << list.dump(2) << "\n";
    return 0;
  }
  io.out << std::left << std::setw(4) << "#" << std::setw(20) << "CAPABILITY" << std::setw(10)
         << "SEVERITY" << std::setw(11) << "DANGEROUS" << std::setw(12) << "CONTAINERD"
         << std::setw(7) << "CRI-O" << std::setw(10) << "BASELINE"
         << "WHY IT MATTERS\n";
  for (const auto& c : Catalog()) {
    auto mark = [](bool b) { return b ? "yes" : "-"; };
    io.out << std::left << std::setw(4) << c.number << std::setw(20) << c.name << std::setw(10)
           << SeverityName(c.severity) << std::setw(11) << mark(c.dangerous) << std::setw(12)
           << mark(Contains(containerd, c.number)) << std::setw(7) << mark(Contains(crio, c.number))
           << std::setw(10) << mark(Contains(baseline, c.number)) << c.reason << "\n";
  }
  io.out << "\nKeywords: ALL (every capability) and privileged: true (every capability and the "
            "node's devices) are critical.\n"
            "CONTAINERD is also Docker's default set; BASELINE marks what the baseline Pod "
            "Security profile lets a container add.\n";
  return 0;
}

int RunVersion(const std::vector<std::string>&, CommandIo& io) {
  io.out << "capwatch " << CapwatchVersion() << "\n";
  return 0;
}

}  // namespace capwatch
