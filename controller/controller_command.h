#pragma once

#include <string>
#include <vector>

namespace capwatch {

// `capwatch controller`: the in-cluster daemon (DESIGN §4). Returns the process exit code.
int RunController(const std::vector<std::string>& args);

}  // namespace capwatch
