#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace capwatch {

// The streams a command talks to, so tests can run commands in process.
struct CommandIo {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  bool out_is_terminal = false;  // colour only on a terminal
};

// Exit codes of `capwatch audit` (DESIGN §4).
inline constexpr int kExitCompliant = 0;
inline constexpr int kExitFindings = 1;
inline constexpr int kExitBadInput = 2;

int RunAudit(const std::vector<std::string>& args, CommandIo& io);
int RunEnforce(const std::vector<std::string>& args, CommandIo& io);
int RunCatalog(const std::vector<std::string>& args, CommandIo& io);
int RunVersion(const std::vector<std::string>& args, CommandIo& io);

std::string_view CapwatchVersion();

}  // namespace capwatch
