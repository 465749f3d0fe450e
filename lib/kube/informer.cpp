#include "kube/informer.h"

namespace capwatch::kube {

std::string ObjectKey(std::string_view namespace_name, std::string_view name) {
  std::string key;
  key.reserve(namespace_name.size() + name.size() + 1);
  if (!namespace_name.empty()) key.append(namespace_name).append("/");
  key.append(name);
  return key;
}

}  // namespace capwatch::kube
