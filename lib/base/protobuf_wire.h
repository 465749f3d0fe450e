#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace capwatch::proto {

// Protocol Buffers wire format (https://protobuf.dev/programming-guides/encoding/), read by
// hand: capwatch reads a few fields of Kubernetes objects and skips the rest, so it needs no
// generated classes, and nothing is copied or allocated to read a message.

enum class WireType : std::uint8_t {
  kVarint = 0,
  kFixed64 = 1,
  kLen = 2,  // strings, bytes, embedded messages, packed repeated fields
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

// The 4 bytes that start every Kubernetes protobuf body ("k8s" and a zero byte), followed by a
// runtime.Unknown message that wraps the object.
inline constexpr std::string_view kKubernetesMagic{"k8s\0", 4};
inline bool HasKubernetesMagic(std::string_view bytes) {
  return bytes.substr(0, kKubernetesMagic.size()) == kKubernetesMagic;
}

// The object inside a Kubernetes protobuf body: "k8s\0", then a runtime.Unknown whose raw
// field holds the message and whose typeMeta names it.
struct KubernetesObject {
  std::string_view api_version;
  std::string_view kind;
  std::string_view raw;
};
// Fails when `bytes` lack the magic, the envelope is malformed, or the message is encoded in a
// way capwatch does not read (a contentEncoding).
Result<KubernetesObject> UnwrapKubernetes(std::string_view bytes);

// One field of a message: its number, wire type, and value (the integer of a varint or fixed
// field, the bytes of a length-delimited one).
struct Field {
  std::uint32_t number = 0;
  WireType type = WireType::kVarint;
  std::uint64_t integer = 0;
  std::string_view bytes;
};

// Reads the fields of one message in order. A malformed message (a varint past 10 bytes, a
// length past the end, a group, a field number 0) stops the reader with an error; what was
// read before stays valid.
class Reader {
 public:
  explicit Reader(std::string_view message) : data_(message) {}

  // The next field, or false at the end of the message or on an error (see error()). Inline
  // for the common field (a one-byte tag, a one-byte length or value); the rest out of line.
  [[nodiscard]] bool Next(Field& field) {
    if (pos_ + 1 < data_.size()) {
      const auto tag = static_cast<std::uint8_t>(data_[pos_]);
      const auto next = static_cast<std::uint8_t>(data_[pos_ + 1]);
      if (tag < 0x80 && next < 0x80 && (tag >> 3) != 0) {
        if ((tag & 7) == static_cast<std::uint8_t>(WireType::kLen) &&
            next <= data_.size() - pos_ - 2) {
          field.number = tag >> 3;
          field.type = WireType::kLen;
          field.integer = 0;
          field.bytes = data_.substr(pos_ + 2, next);
          pos_ += 2 + next;
          return true;
        }
        if ((tag & 7) == static_cast<std::uint8_t>(WireType::kVarint)) {
          field.number = tag >> 3;
          field.type = WireType::kVarint;
          field.integer = next;
          field.bytes = {};
          pos_ += 2;
          return true;
        }
      }
    }
    return NextSlow(field);
  }
  // Why Next returned false before the end; empty at a clean end.
  const std::string& error() const { return error_; }
  // Offset of the next field in the message.
  std::size_t offset() const { return pos_; }

 private:
  bool NextSlow(Field& field);
  bool Fail(std::string why);
  std::string_view data_;
  std::size_t pos_ = 0;
  std::string error_;
};

// Reads a varint at `pos` in `data`, advancing `pos`. False when it is cut or longer than 10
// bytes (`pos` is then unspecified).
bool ReadVarint(std::string_view data, std::size_t& pos, std::uint64_t& value);

// A varint field's value as the signed integer it encodes (int64/int32 fields, not sint).
inline std::int64_t AsInt64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

// The name of a wire type, for messages ("a varint", "a length-delimited field").
std::string_view WireTypeName(WireType type);

// Appends the encoding of a varint, and of a field's tag, to `out`: for the list splitter's
// pages and for tests.
void AppendVarint(std::string& out, std::uint64_t value);
void AppendTag(std::string& out, std::uint32_t number, WireType type);
// A length-delimited field: tag, length, bytes.
void AppendLenField(std::string& out, std::uint32_t number, std::string_view bytes);
void AppendVarintField(std::string& out, std::uint32_t number, std::uint64_t value);

}  // namespace capwatch::proto
