#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace capwatch {

// The documents of a YAML stream, as YAML::LoadAll reads them, for the readers of YAML files
// (manifests, policies). yaml-cpp 0.7's LoadAll reads some malformed text (`"a",2`) as an
// endless run of empty documents and allocates until the process dies; a stream holds at most
// one document more than it has document markers (`---`, `...`), so a parse that reads more is
// stopped first and thrown as the YAML::ParserException it is.
std::vector<YAML::Node> LoadYamlDocuments(const std::string& text);

}  // namespace capwatch
