#pragma once

// capwatch's one result type (STYLE 5: errors are values). A function that can fail returns
//
//   Result<T>  a T, or the Error that explains its absence;
//   Status     (Result<void>) nothing but success or an Error;
//
// and a problem with one field of an object is a FieldError, named by its JSON path. Code that
// talks to the API server uses the same template with kube::ApiStatus as the error
// (kube::Result<T>, lib/kube/api_status.h), so 403, 404, 409, 410 and 429 stay apart. No
// function returns bool with an error string out-parameter, its own error struct, or a list of
// errors beside an out-parameter: those all become one of these. A batch (many objects, each
// valid or not: ManifestResult, PolicyParseResult) is not a result but a list of outcomes, and
// its entries are FieldError-based.
//
// No exceptions. A success holds a default-constructed error: for Error that is an empty string
// and an empty vector, so an ok Status or Result never allocates (base_result_test.cpp).

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace capwatch {

// A problem with one field: `field` is its JSON path in the object (".spec.containers[0].name",
// empty for the object as a whole).
struct FieldError {
  std::string field;
  std::string message;
  // ".spec.containers[0].name: must be a string", or the message alone without a field.
  std::string ToString() const;
  bool operator==(const FieldError&) const = default;
};

// Why something failed: what was being done or what is wrong, and the fields at fault, if any.
class Error {
 public:
  Error() = default;
  explicit Error(std::string message, std::vector<FieldError> fields = {})
      : message_(std::move(message)), fields_(std::move(fields)) {}
  explicit Error(FieldError field) : fields_{std::move(field)} {}

  const std::string& message() const { return message_; }
  const std::vector<FieldError>& fields() const { return fields_; }

  // Prefixes the message with what was being done ("pod list: ...").
  Error& WithContext(std::string_view context);

  // "policy web is invalid: .spec.profile: must be one of ...; .spec.x: unknown field": the
  // message, then each field error, separated by "; ".
  std::string ToString() const;

 private:
  std::string message_;
  std::vector<FieldError> fields_;
};

// A value, or the error that explains its absence. error() of an ok result is E's default
// (for kube::ApiStatus that is OK), so code may read it before or without checking ok().
template <typename T, typename E = Error>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, E>, "a value and its error must differ");

 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(E error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const E& error() const { return error_; }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  E error_;
};

// Success or an error, without a value.
template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;                                          // success
  Result(E error) : failed_(true), error_(std::move(error)) {}  // NOLINT: implicit by design
  static Result Ok() { return Result(); }

  bool ok() const { return !failed_; }
  const E& error() const { return error_; }

 private:
  bool failed_ = false;
  E error_;
};

using Status = Result<void>;

}  // namespace capwatch
