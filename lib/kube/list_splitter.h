#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace capwatch::kube {

// Cuts the JSON of one whole List response ({"kind":...,"metadata":{...},"items":[...]}), as
// it streams in, into pages of about `page_bytes` that are Lists themselves: every top-level
// member seen so far (kind, apiVersion, metadata) and a run of complete items. A reader can
// then ask for a list without pagination (which the API server answers from its watch cache,
// at its own speed) and still decode it a few megabytes at a time. Items are cut only at their
// own boundaries, by following the JSON's nesting and strings; nothing else is parsed.
class ListSplitter {
 public:
  // Receives one page; false stops the splitting (Feed and Finish then return false).
  using PageSink = std::function<bool(std::string_view page)>;

  explicit ListSplitter(std::size_t page_bytes) : page_bytes_(page_bytes) {}

  // The next bytes of the body, split anywhere.
  [[nodiscard]] bool Feed(std::string_view bytes, const PageSink& page);
  // The body ended: hands out the last page (always one, with the members that came after
  // the items, possibly with no items). False if the List was not complete.
  [[nodiscard]] bool Finish(const PageSink& page);

  // Why Feed or Finish returned false, when the JSON was at fault (empty when the sink was).
  const std::string& error() const { return error_; }
  std::size_t items() const { return items_seen_; }

 private:
  enum class Where {
    kBefore,      // before the top-level '{'
    kKeyOrEnd,    // in the object, before a member's key (or '}')
    kKey,         // in a key
    kColon,       // after a key
    kValue,       // in the value of a member other than items, after its ':'
    kItemsOpen,   // after "items": , before '[' (or null: no items)
    kItemsNull,   // in the null of "items": null
    kItems,       // in the items array
    kAfterValue,  // after a member, before ',' or '}'
    kDone,        // after the top-level '}'
  };
  bool Fail(std::string why);
  bool Emit(std::size_t upto, const PageSink& page);
  void EndMember();

  std::size_t page_bytes_;
  Where where_ = Where::kBefore;
  std::string key_;      // the current member's key
  std::string member_;   // the current member other than items, as written
  std::string members_;  // the finished members other than items, comma-separated
  std::string batch_;    // complete and partial items of the next page, as written
  bool batch_has_item_ = false;
  int depth_ = 0;            // inside a value or an item
  std::size_t null_at_ = 0;  // letters of "null" seen
  bool in_string_ = false, escaped_ = false;
  std::size_t items_seen_ = 0;
  std::string page_;  // reused for each page
  std::string error_;
};

}  // namespace capwatch::kube
