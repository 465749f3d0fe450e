#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.h"

namespace capwatch::kube {

// Splits a byte stream into lines, however the bytes were chunked on the wire. A watch response
// is one JSON event per line.
class LineSplitter {
 public:
  // Appends `bytes` and calls `on_line` for every line completed (without the '\n'; a '\r'
  // before it is dropped; empty lines are skipped).
  template <typename OnLine>
  void Feed(std::string_view bytes, OnLine&& on_line) {
    std::size_t start = 0;
    for (;;) {
      const std::size_t nl = bytes.find('\n', start);
      if (nl == std::string_view::npos) break;
      std::string_view piece = bytes.substr(start, nl - start);
      if (pending_.empty()) {
        Emit(piece, on_line);
      } else {
        pending_.append(piece);
        Emit(std::string_view(pending_), on_line);
        pending_.clear();
      }
      start = nl + 1;
    }
    pending_.append(bytes.substr(start));
  }
  // Bytes of an unfinished line: at the end of a stream these are a truncated event.
  std::size_t pending_bytes() const { return pending_.size(); }
  void Reset() { pending_.clear(); }

 private:
  template <typename OnLine>
  static void Emit(std::string_view line, OnLine& on_line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) on_line(line);
  }
  std::string pending_;
};

// Splits a protobuf watch stream (application/vnd.kubernetes.protobuf;stream=watch) into its
// frames, however the bytes were chunked: each frame is a 4-byte big-endian length, then that
// many bytes of a metav1.WatchEvent.
class FrameSplitter {
 public:
  // A frame longer than this ends the stream as broken (the API server's own limit on an
  // object is far below).
  static constexpr std::size_t kMaxFrameBytes = 256u << 20;

  // Appends `bytes` and calls `on_frame` for every frame completed. False once a frame's
  // length is past kMaxFrameBytes (see error()); nothing more is read then.
  template <typename OnFrame>
  bool Feed(std::string_view bytes, OnFrame&& on_frame) {
    if (!error_.empty()) return false;
    pending_.append(bytes);
    std::size_t at = 0;
    while (pending_.size() - at >= 4) {
      const auto* p = reinterpret_cast<const unsigned char*>(pending_.data() + at);
      const std::size_t length = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                                 (std::size_t{p[2]} << 8) | std::size_t{p[3]};
      if (length > kMaxFrameBytes) {
        error_ = "a watch frame of " + std::to_string(length) + " bytes, more than " +
                 std::to_string(kMaxFrameBytes);
        return false;
      }
      if (pending_.size() - at - 4 < length) break;
      on_frame(std::string_view(pending_).substr(at + 4, length));
      at += 4 + length;
    }
    pending_.erase(0, at);
    return true;
  }
  // Bytes of an unfinished frame: at the end of a stream these are a truncated event.
  std::size_t pending_bytes() const { return pending_.size(); }
  const std::string& error() const { return error_; }

 private:
  std::string pending_;
  std::string error_;
};

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view WatchEventTypeName(WatchEventType type);

// One decoded watch event: its type and the raw bytes of its object (JSON, or protobuf from a
// protobuf watch), to be decoded by whoever knows the kind (the Pod decoder, a metadata
// decoder, a Status for ERROR).
struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  std::string_view object;  // valid until the next Decode() or until the line goes away
};

// Splits {"type":"ADDED","object":{...}} into type and object without parsing the object:
// the API server writes exactly that shape, so the object is the text between the prefix and
// the last '}'. Any other shape (reordered keys, spaces) goes through a full JSON parse.
//
// A frame of a protobuf watch (a metav1.WatchEvent: type = 1, object = 2 {raw = 1}) is read
// as well: it starts with the byte of its first field's tag, which no JSON line can.
class WatchEventDecoder {
 public:
  // The fast path (the API server's own shape) allocates nothing, nor does a protobuf frame.
  capwatch::Result<WatchEvent> Decode(std::string_view line);
  // How many lines needed the full parse (0 with a real API server).
  std::size_t slow_path_count() const { return slow_path_; }

 private:
  std::string object_;  // the object re-serialised, on the slow path
  std::size_t slow_path_ = 0;
};

// From a BOOKMARK object or any object, JSON or protobuf: metadata.resourceVersion.
std::string ResourceVersionOf(std::string_view object);

}  // namespace capwatch::kube
