#pragma once

#include <algorithm>

#include "kube/api_status.h"

namespace capwatch::controller {

// 403 with cause NamespaceTerminating: creating anything in a namespace being deleted.
inline bool NamespaceTerminating(const kube::ApiStatus& status) {
  if (status.http_status() != 403) return false;
  return std::any_of(status.causes().begin(), status.causes().end(),
                     [](const kube::StatusCause& c) { return c.reason == "NamespaceTerminating"; });
}

}  // namespace capwatch::controller
