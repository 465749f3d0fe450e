#include "workload/yaml_stream.h"

#include <yaml-cpp/eventhandler.h>

#include <cstddef>
#include <sstream>

namespace capwatch {
namespace {

// Counts documents, keeping nothing.
class DocumentCounter : public YAML::EventHandler {
 public:
  std::size_t documents = 0;
  YAML::Mark last_start;

  void OnDocumentStart(const YAML::Mark& mark) override {
    ++documents;
    last_start = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Every "---" and "..." counts, in scalars too: the bound only has to hold, not be tight.
std::size_t DocumentMarkers(const std::string& text) {
  std::size_t n = 0;
  for (const char* marker : {"---", "..."}) {
    for (std::size_t at = text.find(marker); at != std::string::npos;
         at = text.find(marker, at + 3)) {
      ++n;
    }
  }
  return n;
}

}  // namespace

std::vector<YAML::Node> LoadYamlDocuments(const std::string& text) {
  // A first pass that builds nothing, so the endless parse costs no memory.
  const std::size_t limit = DocumentMarkers(text) + 1;
  {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (parser.HandleNextDocument(counter)) {
      if (counter.documents > limit) {
        throw YAML::ParserException(
            counter.last_start,
            "malformed: the parser reads more documents than the text has (" +
                std::to_string(limit - 1) + " document markers)");
      }
    }
  }
  return YAML::LoadAll(text);
}

}  // namespace capwatch
