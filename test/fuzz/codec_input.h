#pragma once

// An informer codec fed what a list request and a watch event hand it: the same bytes as a
// list page and as one object. Codecs run on informer threads, where a throw ends the process;
// they promise to refuse what they cannot read instead.

#include <functional>
#include <string>

#include "fuzz_input.h"
#include "kube/reflector.h"

namespace capwatch::fuzz {

// Decodes `text` both ways with `codec`; `on_item` sees every item and object decoded.
template <typename T, typename Codec>
void DecodeBothWays(Codec& codec, std::string_view text, const std::function<void(T&)>& on_item) {
  kube::ListPageMeta meta;
  (void)codec.DecodeList(text, [&](T&& item) { on_item(item); }, meta);
  if (auto object = codec.Decode(text); object.ok()) on_item(object.value());
}

}  // namespace capwatch::fuzz
