#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace capwatch {

// The longest prefix of `text` that is at most `max_bytes` long and does not end inside a
// UTF-8 sequence. Bytes that are not UTF-8 are counted as one character each, so the prefix of
// any input is well defined.
std::string_view TruncateUtf8(std::string_view text, std::size_t max_bytes);

// `text` cut to at most `max_bytes` (as TruncateUtf8), with "…" appended when something was
// cut: for quoting untrusted text (a response body, a watch line) in a message.
std::string Excerpt(std::string_view text, std::size_t max_bytes);

// Length of the well-formed UTF-8 sequence that starts at `text[0]`, or 0 when the bytes there
// are not one (a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, cut).
std::size_t Utf8SequenceLength(std::string_view text);

// True when all of `text` is well-formed UTF-8.
bool IsUtf8(std::string_view text);

// `bytes` as well-formed UTF-8: each byte that does not begin a well-formed sequence becomes
// U+FFFD, as Go's JSON encoder writes it (for strings read from protobuf, which the API server
// does not check).
std::string ValidUtf8(std::string_view bytes);

}  // namespace capwatch
