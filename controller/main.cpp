// The capwatch binary: one entry point, a subcommand per job (DESIGN §4).
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "controller_command.h"

namespace {

constexpr const char* kUsage =
    "usage: capwatch <command> [flags]\n"
    "\n"
    "commands:\n"
    "  controller run the in-cluster controller (capwatch controller --help)\n"
    "  audit      evaluate manifests offline (capwatch audit --help)\n"
    "  enforce    print the admission policies that enforce a policy (capwatch enforce --help)\n"
    "  catalog    print the capability catalog\n"
    "  version    print the version\n";

// glibc gives each thread that allocates an arena of its own, up to eight per core. The
// controller's threads (informers, workers, the HTTP client's pool) each build and drop
// megabyte-sized JSON documents, and every arena keeps the high-water mark of what passed
// through it: under the hostile-load run (test/e2e/README.md) 200 reports of 900 KiB took the
// resident set to 279 MiB with the default arenas and 130 MiB with two. An operator's own
// MALLOC_ARENA_MAX wins.
void LimitMallocArenas() {
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  capwatch::CommandIo io{std::cin, std::cout, std::cerr, isatty(STDOUT_FILENO) == 1};
  if (command == "controller") {
    LimitMallocArenas();
    return capwatch::RunController(args);
  }
  if (command == "audit") return capwatch::RunAudit(args, io);
  if (command == "enforce") return capwatch::RunEnforce(args, io);
  if (command == "catalog") return capwatch::RunCatalog(args, io);
  if (command == "version" || command == "--version") return capwatch::RunVersion(args, io);
  if (command == "-h" || command == "--help" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "capwatch: unknown command \"" << command << "\"\n" << kUsage;
  return 2;
}
