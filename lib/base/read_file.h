#pragma once

#include <string>

#include "base/result.h"

namespace capwatch {

// The whole file, or an Error naming the path and why it could not be read.
Result<std::string> ReadWholeFile(const std::string& path);

}  // namespace capwatch
