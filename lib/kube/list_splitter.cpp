#include "kube/list_splitter.h"

#include <cstring>

#include "base/protobuf_wire.h"

namespace capwatch::kube {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Moves `i` past the closing quote of the string it is in, or to the end of `s`. `escaped`
// says on entry whether s[i] is escaped, and on exit whether the next bytes' first one is.
// True when the string ended. memchr finds each quote; a quote after an odd run of
// backslashes is escaped and the search goes on.
bool SkipString(std::string_view s, std::size_t& i, bool& escaped) {
  const std::size_t n = s.size();
  if (escaped) {
    if (i == n) return false;
    escaped = false;
    ++i;
  }
  const std::size_t from = i;
  auto backslashes_before = [&s, from](std::size_t at) {
    std::size_t run = 0;
    while (run < at - from && s[at - 1 - run] == '\\') ++run;
    return run;
  };
  while (true) {
    const void* quote = i < n ? std::memchr(s.data() + i, '"', n - i) : nullptr;
    if (quote == nullptr) {
      escaped = backslashes_before(n) % 2 == 1;
      i = n;
      return false;
    }
    const auto at = static_cast<std::size_t>(static_cast<const char*>(quote) - s.data());
    i = at + 1;
    if (backslashes_before(at) % 2 == 0) return true;
  }
}

std::string Unexpected(char c, std::string_view where) {
  std::string out = "unexpected '";
  out += c;
  out += "' ";
  out += where;
  return out;
}

}  // namespace

bool ListSplitter::Fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  return false;
}

bool ListSplitter::Emit(std::size_t upto, const PageSink& page) {
  page_.clear();
  page_.reserve(members_.size() + upto + 16);
  page_ += '{';
  page_ += members_;
  if (!members_.empty()) page_ += ',';
  page_ += "\"items\":[";
  page_.append(batch_, 0, upto);
  page_ += "]}";
  return page(page_);
}

void ListSplitter::EndMember() {
  while (!member_.empty() && IsSpace(member_.back())) member_.pop_back();
  if (!members_.empty()) members_ += ',';
  members_ += member_;
  member_.clear();
}

bool ListSplitter::Feed(std::string_view bytes, const PageSink& page) {
  if (!error_.empty()) return false;
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  while (i < n) {
    const char c = bytes[i];
    switch (where_) {
      case Where::kBefore:
        if (c == '{') {
          where_ = Where::kKeyOrEnd;
        } else if (!IsSpace(c)) {
          return Fail("the list is not a JSON object");
        }
        ++i;
        break;
      case Where::kKeyOrEnd:
        if (c == '"') {
          where_ = Where::kKey;
          key_.clear();
          member_.assign(1, '"');
        } else if (c == '}') {
          where_ = Where::kDone;
        } else if (c != ',' && !IsSpace(c)) {
          return Fail(Unexpected(c, "where a member of the list begins"));
        }
        ++i;
        break;
      case Where::kKey:
        if (escaped_) {
          escaped_ = false;
        } else if (c == '\\') {
          escaped_ = true;
        } else if (c == '"') {
          where_ = Where::kColon;
          member_ += c;
          ++i;
          break;
        }
        if (key_.size() < 256) key_ += c;
        member_ += c;
        ++i;
        break;
      case Where::kColon:
        if (c == ':') {
          if (key_ == "items") {
            where_ = Where::kItemsOpen;
            member_.clear();
          } else {
            member_ += c;
            where_ = Where::kValue;
            depth_ = 0;
          }
        } else if (!IsSpace(c)) {
          std::string why = "no ':' after the key \"";
          why += key_;
          why += '"';
          return Fail(std::move(why));
        }
        ++i;
        break;
      case Where::kValue: {
        // A member other than items (kind, apiVersion, metadata): kept as written.
        const std::size_t start = i;
        bool ended = false;
        while (i < n) {
          const char v = bytes[i];
          if (in_string_) {
            if (SkipString(bytes, i, escaped_)) in_string_ = false;
            continue;
          }
          if (v == '"') {
            in_string_ = true;
          } else if (v == '{' || v == '[') {
            ++depth_;
          } else if ((v == '}' || v == ']') && depth_ > 0) {
            --depth_;
          } else if ((v == ',' || v == '}') && depth_ == 0) {
            ended = true;
            break;
          }
          ++i;
        }
        member_.append(bytes.substr(start, i - start));
        if (member_.size() > (1u << 20)) return Fail("a member of the list larger than 1 MiB");
        if (ended) {
          EndMember();
          where_ = bytes[i] == '}' ? Where::kDone : Where::kKeyOrEnd;
          ++i;
        }
        break;
      }
      case Where::kItemsOpen:
        if (c == '[') {
          where_ = Where::kItems;
          depth_ = 0;
        } else if (c == 'n') {
          // An empty list of some kinds (PartialObjectMetadataList) comes as "items": null.
          where_ = Where::kItemsNull;
          null_at_ = 1;
        } else if (!IsSpace(c)) {
          return Fail("items is neither an array nor null");
        }
        ++i;
        break;
      case Where::kItemsNull:
        if (c != "null"[null_at_]) return Fail("items is neither an array nor null");
        if (++null_at_ == 4) where_ = Where::kAfterValue;
        ++i;
        break;
      case Where::kItems: {
        std::size_t start = i;
        bool closed = false;
        while (i < n) {
          const char v = bytes[i];
          if (in_string_) {
            if (SkipString(bytes, i, escaped_)) in_string_ = false;
            continue;
          }
          if (v == '"') {
            in_string_ = true;
          } else if (v == '{' || v == '[') {
            ++depth_;
            batch_has_item_ = true;
          } else if (v == '}' || v == ']') {
            if (depth_ == 0) {
              if (v == '}') return Fail("unbalanced '}' in the items");
              closed = true;
              break;
            }
            --depth_;
          } else if (v == ',' && depth_ == 0) {
            ++items_seen_;
            // Between two items: the page is full, hand it out.
            if (batch_.size() + (i - start) >= page_bytes_) {
              batch_.append(bytes.substr(start, i - start));
              if (!Emit(batch_.size(), page)) return false;
              batch_.clear();
              start = i + 1;  // not the comma
            }
          } else if (!IsSpace(v)) {
            batch_has_item_ = true;
          }
          ++i;
        }
        batch_.append(bytes.substr(start, i - start));
        if (closed) {
          if (batch_has_item_) ++items_seen_;
          where_ = Where::kAfterValue;
          ++i;
        }
        break;
      }
      case Where::kAfterValue:
        if (c == ',') {
          where_ = Where::kKeyOrEnd;
        } else if (c == '}') {
          where_ = Where::kDone;
        } else if (!IsSpace(c)) {
          return Fail(Unexpected(c, "after the items"));
        }
        ++i;
        break;
      case Where::kDone:
        if (!IsSpace(c)) return Fail("bytes after the end of the list");
        ++i;
        break;
    }
  }
  return true;
}

bool ListSplitter::Finish(const PageSink& page) {
  if (!error_.empty()) return false;
  if (where_ != Where::kDone) return Fail("the list ended before its closing '}'");
  if (!Emit(batch_.size(), page)) return false;
  batch_.clear();
  return true;
}

}  // namespace capwatch::kube

namespace capwatch::kube {

namespace {
constexpr std::string_view kMagic = proto::kKubernetesMagic;
constexpr std::uint32_t kEnvelopeRaw = 2;  // runtime.Unknown.raw
constexpr std::uint32_t kListMetadata = 1, kListItems = 2;
constexpr int kVarintType = static_cast<int>(proto::WireType::kVarint);
constexpr int kFixed64Type = static_cast<int>(proto::WireType::kFixed64);
constexpr int kLenType = static_cast<int>(proto::WireType::kLen);
constexpr int kFixed32Type = static_cast<int>(proto::WireType::kFixed32);
}  // namespace

bool ProtoListSplitter::Fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  return false;
}

bool ProtoListSplitter::Emit(const PageSink& page) {
  page_.clear();
  page_.reserve(kMagic.size() + members_.size() + list_meta_.size() + batch_.size() + 16);
  page_.append(kMagic);
  page_ += members_;
  proto::AppendTag(page_, kEnvelopeRaw, proto::WireType::kLen);
  proto::AppendVarint(page_, list_meta_.size() + batch_.size());
  page_ += list_meta_;
  page_ += batch_;
  batch_.clear();
  batch_items_ = 0;
  return page(page_);
}

bool ProtoListSplitter::StartValue() {
  // The tag is read (its bytes are in field_ for now): where does this field go?
  std::string header;
  header.swap(field_);
  if (!in_list_) {
    if (number_ == kEnvelopeRaw && wire_type_ == kLenType) {
      if (seen_list_) return Fail("the protobuf body holds two lists");
      target_ = nullptr;  // the List is read field by field, not kept whole
    } else {
      target_ = &members_;
    }
  } else if (number_ == kListItems) {
    if (wire_type_ != kLenType) return Fail("an item of the protobuf list is not a message");
    target_ = &batch_;
  } else if (number_ == kListMetadata && wire_type_ == kLenType) {
    target_ = &field_;
  } else {
    target_ = nullptr;  // another field of the List: skipped
  }
  if (target_ != nullptr) target_->append(header);
  varint_ = 0;
  varint_shift_ = 0;
  switch (wire_type_) {
    case kVarintType:
      where_ = Where::kVarint;
      break;
    case kFixed64Type:
    case kFixed32Type:
      where_ = Where::kFixed;
      value_left_ = wire_type_ == kFixed64Type ? 8 : 4;
      break;
    case kLenType:
      where_ = Where::kLength;
      break;
    default:
      return Fail("field " + std::to_string(number_) + " of the protobuf list has wire type " +
                  std::to_string(wire_type_) + ", which Kubernetes never sends");
  }
  return true;
}

bool ProtoListSplitter::EndField(const PageSink& page) {
  if (in_list_ && target_ == &batch_) {
    ++batch_items_;
    ++items_seen_;
  } else if (in_list_ && target_ == &field_) {
    list_meta_.swap(field_);
  }
  field_.clear();
  target_ = nullptr;
  where_ = Where::kTag;
  varint_ = 0;
  varint_shift_ = 0;
  if (in_list_ && list_left_ == 0) in_list_ = false;
  if (batch_items_ > 0 && batch_.size() >= page_bytes_) return Emit(page);
  return true;
}

bool ProtoListSplitter::Feed(std::string_view bytes, const PageSink& page) {
  if (!error_.empty()) return false;
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  while (i < n) {
    if (where_ == Where::kMagic) {
      if (bytes[i] != kMagic[magic_seen_]) return Fail("the list is not Kubernetes protobuf");
      ++i;
      if (++magic_seen_ == kMagic.size()) where_ = Where::kTag;
      continue;
    }
    // How many of the next bytes belong to this field (in the List: no further than its end).
    std::size_t avail = n - i;
    if (in_list_) {
      if (list_left_ == 0) return Fail("a field runs past the end of the protobuf list");
      avail = static_cast<std::size_t>(std::min<std::uint64_t>(avail, list_left_));
    }
    if (where_ == Where::kValue || where_ == Where::kFixed) {
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(avail, value_left_));
      if (target_ != nullptr) target_->append(bytes.substr(i, take));
      i += take;
      value_left_ -= take;
      if (in_list_) list_left_ -= take;
      if (value_left_ == 0 && !EndField(page)) return false;
      continue;
    }
    // A byte of a varint: a tag, a length, or a varint field's value.
    const auto b = static_cast<std::uint8_t>(bytes[i++]);
    if (in_list_) --list_left_;
    if (varint_shift_ >= 70) return Fail("a varint of the protobuf list is longer than 10 bytes");
    varint_ |= static_cast<std::uint64_t>(b & 0x7f) << varint_shift_;
    varint_shift_ += 7;
    if (where_ == Where::kTag) {
      field_ += static_cast<char>(b);
    } else if (target_ != nullptr) {
      target_->push_back(static_cast<char>(b));
    }
    if (b & 0x80) continue;
    switch (where_) {
      case Where::kTag:
        number_ = static_cast<std::uint32_t>(varint_ >> 3);
        wire_type_ = static_cast<int>(varint_ & 7);
        if ((varint_ >> 3) == 0 || (varint_ >> 3) > 0x1fffffff) {
          return Fail("a field number of the protobuf list is out of range");
        }
        if (!StartValue()) return false;
        break;
      case Where::kLength:
        if (!in_list_ && number_ == kEnvelopeRaw && target_ == nullptr) {
          // The List begins: its fields are read one by one.
          in_list_ = true;
          seen_list_ = true;
          list_left_ = varint_;
          field_.clear();
          where_ = Where::kTag;
          varint_ = 0;
          varint_shift_ = 0;
          if (list_left_ == 0) in_list_ = false;
          break;
        }
        if (in_list_ && varint_ > list_left_) {
          return Fail("an item says " + std::to_string(varint_) + " bytes, the list has " +
                      std::to_string(list_left_) + " left");
        }
        value_left_ = varint_;
        where_ = Where::kValue;
        if (value_left_ == 0 && !EndField(page)) return false;
        break;
      case Where::kVarint:
        if (!EndField(page)) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

bool ProtoListSplitter::Finish(const PageSink& page) {
  if (!error_.empty()) return false;
  if (where_ == Where::kMagic) return Fail("the protobuf list ended in its first bytes");
  if (in_list_) {
    return Fail("the protobuf list ended after " + std::to_string(items_seen_) + " items, " +
                std::to_string(list_left_) + " bytes short");
  }
  if (where_ != Where::kTag || varint_shift_ != 0) {
    return Fail("the protobuf list ended inside a field");
  }
  if (!seen_list_) return Fail("the protobuf body holds no list");
  return Emit(page);
}

bool AnyListSplitter::Feed(std::string_view bytes, const PageSink& page) {
  if (!decided_ && !bytes.empty()) {
    decided_ = true;
    is_proto_ = bytes[0] == kMagic[0];
  }
  return is_proto_ ? proto_.Feed(bytes, page) : json_.Feed(bytes, page);
}

bool AnyListSplitter::Finish(const PageSink& page) {
  return is_proto_ ? proto_.Finish(page) : json_.Finish(page);
}

}  // namespace capwatch::kube
