#pragma once

#include <cstddef>
#include <cstdint>
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

namespace capwatch::kube {

// The same for a list in the API server's protobuf ("k8s\0", then a runtime.Unknown whose raw
// field is the List: its ListMeta and one length-delimited field per item). Pages are
// protobuf Lists themselves: the envelope's other fields, the ListMeta, and a run of whole
// items. Items are cut at the lengths that frame them; nothing inside an item is read.
class ProtoListSplitter {
 public:
  using PageSink = ListSplitter::PageSink;

  explicit ProtoListSplitter(std::size_t page_bytes) : page_bytes_(page_bytes) {}

  [[nodiscard]] bool Feed(std::string_view bytes, const PageSink& page);
  [[nodiscard]] bool Finish(const PageSink& page);
  const std::string& error() const { return error_; }
  std::size_t items() const { return items_seen_; }

 private:
  enum class Where {
    kMagic,   // the 4 bytes "k8s\0"
    kTag,     // a field's tag (in the envelope, or in the List when in_list_)
    kLength,  // a length-delimited field's length
    kVarint,  // a varint field's value
    kFixed,   // a fixed-width field's bytes
    kValue,   // a length-delimited field's bytes
  };
  bool Fail(std::string why);
  bool Emit(const PageSink& page);
  // A field's header is read: what to do with its value.
  bool StartValue();
  // A field ended: where it goes.
  bool EndField(const PageSink& page);

  std::size_t page_bytes_;
  Where where_ = Where::kMagic;
  std::size_t magic_seen_ = 0;
  bool in_list_ = false;  // inside the envelope's raw field (the List)
  bool seen_list_ = false;
  std::uint64_t list_left_ = 0;  // bytes of the List not yet read
  std::uint64_t varint_ = 0;     // the varint being read
  int varint_shift_ = 0;
  std::uint32_t number_ = 0;  // the current field
  int wire_type_ = 0;
  std::uint64_t value_left_ = 0;   // bytes of the current value not yet read
  std::string* target_ = nullptr;  // where the current field's bytes go (null: skipped)
  std::string field_;              // the current field as written, when it is kept
  std::string members_;            // the envelope's fields other than raw, as written
  std::string list_meta_;          // the List's metadata field, as written
  std::string batch_;              // whole items of the next page, as written
  std::size_t batch_items_ = 0;
  std::size_t items_seen_ = 0;
  std::string page_;
  std::string error_;
};

// Either splitter, chosen by the body's first byte: a protobuf body starts with 'k' ("k8s\0"),
// which no JSON document can.
class AnyListSplitter {
 public:
  using PageSink = ListSplitter::PageSink;
  explicit AnyListSplitter(std::size_t page_bytes) : json_(page_bytes), proto_(page_bytes) {}
  [[nodiscard]] bool Feed(std::string_view bytes, const PageSink& page);
  [[nodiscard]] bool Finish(const PageSink& page);
  const std::string& error() const { return is_proto_ ? proto_.error() : json_.error(); }
  std::size_t items() const { return is_proto_ ? proto_.items() : json_.items(); }
  bool is_proto() const { return is_proto_; }

 private:
  ListSplitter json_;
  ProtoListSplitter proto_;
  bool decided_ = false;
  bool is_proto_ = false;
};

}  // namespace capwatch::kube
