#include "kube/list_splitter.h"

#include <cstring>

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
