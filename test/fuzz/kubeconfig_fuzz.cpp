// A kubeconfig file: LoadKubeconfig reads files, so each input is written to one file in a
// scratch directory of this process (relative certificate and token paths resolve there).

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_input.h"
#include "kube/kubeconfig.h"

namespace {

std::string& ConfigPath() {
  static std::string path;
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  capwatch::fuzz::QuietLogs();  // insecure-skip-tls-verify warns
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/capwatch-kubeconfig-fuzz-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) std::abort();
  ConfigPath() = dir + "/config";
  std::atexit([] { std::filesystem::remove_all(std::filesystem::path(ConfigPath()).parent_path()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream out(ConfigPath(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  (void)capwatch::kube::LoadKubeconfig({ConfigPath()});
  (void)capwatch::kube::LoadKubeconfig({ConfigPath()}, "other");  // an explicit --context
  return 0;
}
