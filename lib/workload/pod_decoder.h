#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "workload/pod_view.h"

namespace capwatch {

// Entries of one capabilities.add or .drop list that are read; the rest are counted and
// recorded as an unreadable field (there are 41 capabilities: this bounds memory, not a
// meaningful list).
inline constexpr std::size_t kMaxCapabilityListEntries = 100'000;

// Decodes Pod JSON into PodView with simdjson's on-demand API: one pass, keeping only the
// projected fields (managedFields, status and the rest are skipped, never materialised).
// A projected field of the wrong type (a number in capabilities.add, "yes" for privileged) does
// not lose the Pod: it is recorded in PodView::unreadable with its path in the Pod, and the
// rest is read (fail closed: the engine reports it). Only input that is no Pod at all (invalid
// JSON, a root that is no object) fails.
// One decoder per thread; it reuses its buffers between calls.
class PodDecoder {
 public:
  PodDecoder();
  ~PodDecoder();
  PodDecoder(const PodDecoder&) = delete;
  PodDecoder& operator=(const PodDecoder&) = delete;

  // A Pod or anything shaped like one (a pod template: metadata + spec), into `out` (whose
  // buffers are reused). Ok also when some fields were unreadable (see PodView::unreadable);
  // `out.name` is empty when the name was. A failure is one FieldError with the JSON path of
  // the offending value (".spec.containers[1]").
  Status DecodePod(std::string_view json, PodView& out);

  // A list body ({"items": [...]}, as a list request or kubectl get -o json returns), calling
  // `on_pod` for each item. Also reports metadata.resourceVersion and metadata.continue.
  struct ListMeta {
    std::string resource_version;
    std::string continue_token;
  };
  // An item with unreadable fields is still passed to `on_pod`, with what could be read and
  // its unreadable fields (paths in the item). Only an item that cannot be filed, because it is
  // no object or its metadata, name or namespace is unreadable, is reported to `on_item_error`
  // (path in the list: ".items[3].metadata.name") and skipped, so it does not lose the others;
  // without `on_item_error` such an item fails the list.
  Status DecodePodList(std::string_view json, const std::function<void(PodView&&)>& on_pod,
                       ListMeta& meta,
                       const std::function<void(const FieldError&)>& on_item_error = {});

  // What the decoder keeps between calls, in input bytes: its padded copy of the input and the
  // document size simdjson's index is allocated for. Bounded, whatever the largest input was.
  std::size_t retained_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace capwatch
