#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace capwatch::kube {

// The API server's `Status.reason` (metav1.StatusReason), plus the ways a request can fail
// before any Status exists (transport, decode, cancelled).
enum class StatusReason {
  kOk,
  kNotFound,
  kAlreadyExists,
  kConflict,
  kGone,     // 410: a watch or list resourceVersion is too old
  kExpired,  // 410 with reason Expired: a continue token is too old
  kTooManyRequests,
  kForbidden,
  kUnauthorized,
  kInvalid,
  kBadRequest,
  kMethodNotAllowed,
  kTimeout,
  kServerTimeout,
  kInternalError,
  kServiceUnavailable,
  kUnknown,    // an HTTP error without a reason we know
  kTransport,  // no HTTP response: connect, TLS, read timeout, dropped connection
  kDecode,     // a response we could not understand
  kCancelled,  // the caller stopped the request
  kConfig,     // bad client configuration or credentials we could not obtain
};

std::string_view StatusReasonName(StatusReason reason);

// One entry of Status.details.causes (a field validation error, for Invalid).
struct StatusCause {
  std::string reason;
  std::string message;
  std::string field;
};

// The outcome of one API request, kept as a value: the HTTP code, the reason the API server
// gave, its message, and the causes. 403, 404, 409, 410 and 429 are told apart by reason().
class [[nodiscard]] ApiStatus {
 public:
  ApiStatus() = default;
  static ApiStatus Ok(int http_status = 200) {
    return ApiStatus(http_status, StatusReason::kOk, {});
  }
  ApiStatus(int http_status, StatusReason reason, std::string message)
      : http_status_(http_status), reason_(reason), message_(std::move(message)) {}

  // From an HTTP error response: its code and body (a metav1.Status when the API server wrote
  // it, anything else when a proxy did).
  static ApiStatus FromResponse(int http_status, std::string_view body);
  // The code field of a Status body, JSON or protobuf (an ERROR watch event's object); 0 when
  // it has none.
  static int CodeOf(std::string_view body);
  static ApiStatus Transport(std::string message) {
    return ApiStatus(0, StatusReason::kTransport, std::move(message));
  }

  bool ok() const { return reason_ == StatusReason::kOk; }
  int http_status() const { return http_status_; }
  StatusReason reason() const { return reason_; }
  const std::string& message() const { return message_; }
  const std::vector<StatusCause>& causes() const { return causes_; }
  std::optional<std::chrono::seconds> retry_after() const { return retry_after_; }

  bool IsNotFound() const { return reason_ == StatusReason::kNotFound; }
  bool IsConflict() const { return reason_ == StatusReason::kConflict; }
  bool IsAlreadyExists() const { return reason_ == StatusReason::kAlreadyExists; }
  // 410: the resourceVersion (Gone) or continue token (Expired) is too old.
  bool IsGone() const {
    return reason_ == StatusReason::kGone || reason_ == StatusReason::kExpired;
  }
  bool IsTooManyRequests() const { return reason_ == StatusReason::kTooManyRequests; }
  bool IsServerError() const { return http_status_ >= 500; }

  void set_retry_after(std::chrono::seconds s) { retry_after_ = s; }
  void add_cause(StatusCause cause) { causes_.push_back(std::move(cause)); }
  // Prefixes the message with what was being done ("get pods prod/web: ...").
  ApiStatus& WithContext(std::string_view context);

  // "NotFound (404): pods \"web\" not found", causes appended for Invalid.
  std::string ToString() const;

 private:
  int http_status_ = 200;
  StatusReason reason_ = StatusReason::kOk;
  std::string message_;
  std::vector<StatusCause> causes_;
  std::optional<std::chrono::seconds> retry_after_;
};

// A value or the status that explains its absence: capwatch's one result type (lib/base) with
// the API server's answer as the error. error() of an ok result is ApiStatus::Ok().
template <typename T>
using Result = capwatch::Result<T, ApiStatus>;

}  // namespace capwatch::kube
