#include "base/protobuf_wire.h"

#include "base/utf8.h"

namespace capwatch::proto {

bool ReadVarint(std::string_view data, std::size_t& pos, std::uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (pos >= data.size()) return false;
    const auto byte = static_cast<std::uint8_t>(data[pos++]);
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

bool Reader::Fail(std::string why) {
  error_ = std::move(why) + " at byte " + std::to_string(pos_);
  pos_ = data_.size();
  return false;
}

bool Reader::NextSlow(Field& field) {
  if (pos_ >= data_.size()) return false;
  const std::size_t start = pos_;
  std::uint64_t tag = 0;
  if (!ReadVarint(data_, pos_, tag)) {
    pos_ = start;
    return Fail("a field tag is cut or too long");
  }
  const std::uint64_t number = tag >> 3;
  if (number == 0 || number > 0x1fffffff) {
    pos_ = start;
    return Fail("field number " + std::to_string(number) + " is out of range");
  }
  field.number = static_cast<std::uint32_t>(number);
  field.type = static_cast<WireType>(tag & 7);
  field.integer = 0;
  field.bytes = {};
  switch (field.type) {
    case WireType::kVarint:
      if (!ReadVarint(data_, pos_, field.integer)) {
        pos_ = start;
        return Fail("the varint of field " + std::to_string(number) + " is cut or too long");
      }
      return true;
    case WireType::kFixed64:
    case WireType::kFixed32: {
      const std::size_t width = field.type == WireType::kFixed64 ? 8 : 4;
      if (data_.size() - pos_ < width) {
        pos_ = start;
        return Fail("field " + std::to_string(number) + " is cut");
      }
      for (std::size_t i = 0; i < width; ++i) {
        field.integer |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(data_[pos_ + i]))
                         << (8 * i);
      }
      pos_ += width;
      return true;
    }
    case WireType::kLen: {
      std::uint64_t length = 0;
      if (!ReadVarint(data_, pos_, length)) {
        pos_ = start;
        return Fail("the length of field " + std::to_string(number) + " is cut or too long");
      }
      if (length > data_.size() - pos_) {
        pos_ = start;
        return Fail("field " + std::to_string(number) + " says " + std::to_string(length) +
                    " bytes, " + std::to_string(data_.size() - pos_) + " are left");
      }
      field.bytes = data_.substr(pos_, static_cast<std::size_t>(length));
      pos_ += static_cast<std::size_t>(length);
      return true;
    }
    case WireType::kStartGroup:
    case WireType::kEndGroup:
      pos_ = start;
      return Fail("field " + std::to_string(number) + " is a group, which Kubernetes never sends");
  }
  pos_ = start;
  return Fail("field " + std::to_string(number) + " has wire type " +
              std::to_string(static_cast<int>(tag & 7)) + ", which does not exist");
}

std::string_view WireTypeName(WireType type) {
  switch (type) {
    case WireType::kVarint:
      return "a varint";
    case WireType::kFixed64:
      return "a 64-bit field";
    case WireType::kLen:
      return "a length-delimited field";
    case WireType::kStartGroup:
    case WireType::kEndGroup:
      return "a group";
    case WireType::kFixed32:
      return "a 32-bit field";
  }
  return "an unknown wire type";
}

void AppendVarint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

void AppendTag(std::string& out, std::uint32_t number, WireType type) {
  AppendVarint(out, (static_cast<std::uint64_t>(number) << 3) | static_cast<std::uint64_t>(type));
}

void AppendLenField(std::string& out, std::uint32_t number, std::string_view bytes) {
  AppendTag(out, number, WireType::kLen);
  AppendVarint(out, bytes.size());
  out.append(bytes);
}

void AppendVarintField(std::string& out, std::uint32_t number, std::uint64_t value) {
  AppendTag(out, number, WireType::kVarint);
  AppendVarint(out, value);
}

// The envelope: runtime.Unknown {typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2,
// contentEncoding = 3, contentType = 4}.
Result<KubernetesObject> UnwrapKubernetes(std::string_view bytes) {
  if (!HasKubernetesMagic(bytes)) {
    return Error("not a Kubernetes protobuf body (it does not start with \"k8s\\0\")");
  }
  KubernetesObject out;
  bool has_raw = false;
  Reader reader(bytes.substr(kKubernetesMagic.size()));
  Field f;
  while (reader.Next(f)) {
    if (f.type != WireType::kLen) continue;
    if (f.number == 1) {
      Reader tm(f.bytes);
      Field t;
      while (tm.Next(t)) {
        if (t.type != WireType::kLen) continue;
        if (t.number == 1) out.api_version = t.bytes;
        if (t.number == 2) out.kind = t.bytes;
      }
      if (!tm.error().empty()) return Error("malformed protobuf typeMeta: " + tm.error());
    } else if (f.number == 2) {
      out.raw = f.bytes;
      has_raw = true;
    } else if (f.number == 3 && !f.bytes.empty()) {
      return Error("protobuf body with contentEncoding \"" + Excerpt(f.bytes, 40) +
                   "\", which capwatch does not read");
    }
  }
  if (!reader.error().empty()) return Error("malformed protobuf envelope: " + reader.error());
  if (!has_raw && out.kind.empty()) return Error("protobuf envelope without an object");
  return out;
}

}  // namespace capwatch::proto
