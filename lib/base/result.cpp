#include "base/result.h"

namespace capwatch {

std::string FieldError::ToString() const {
  return field.empty() ? message : field + ": " + message;
}

Error& Error::WithContext(std::string_view context) {
  message_ = message_.empty() ? std::string(context) : std::string(context) + ": " + message_;
  return *this;
}

std::string Error::ToString() const {
  std::string out = message_;
  std::string_view separator = ": ";  // after the message; between the fields "; "
  for (const auto& f : fields_) {
    if (!out.empty()) out += separator;
    out += f.ToString();
    separator = "; ";
  }
  return out;
}

}  // namespace capwatch
