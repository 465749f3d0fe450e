#include "kube/api_status.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "base/utf8.h"

namespace capwatch::kube {
namespace {

struct ReasonName {
  StatusReason reason;
  std::string_view name;
};

constexpr ReasonName kReasonNames[] = {
    {StatusReason::kOk, "OK"},
    {StatusReason::kNotFound, "NotFound"},
    {StatusReason::kAlreadyExists, "AlreadyExists"},
    {StatusReason::kConflict, "Conflict"},
    {StatusReason::kGone, "Gone"},
    {StatusReason::kExpired, "Expired"},
    {StatusReason::kTooManyRequests, "TooManyRequests"},
    {StatusReason::kForbidden, "Forbidden"},
    {StatusReason::kUnauthorized, "Unauthorized"},
    {StatusReason::kInvalid, "Invalid"},
    {StatusReason::kBadRequest, "BadRequest"},
    {StatusReason::kMethodNotAllowed, "MethodNotAllowed"},
    {StatusReason::kTimeout, "Timeout"},
    {StatusReason::kServerTimeout, "ServerTimeout"},
    {StatusReason::kInternalError, "InternalError"},
    {StatusReason::kServiceUnavailable, "ServiceUnavailable"},
    {StatusReason::kUnknown, "Unknown"},
    {StatusReason::kTransport, "Transport"},
    {StatusReason::kDecode, "Decode"},
    {StatusReason::kCancelled, "Cancelled"},
    {StatusReason::kConfig, "Config"},
};

// What the API server means by a bare HTTP code (k8s.io/apimachinery/pkg/api/errors).
StatusReason ReasonFromCode(int code) {
  switch (code) {
    case 400:
      return StatusReason::kBadRequest;
    case 401:
      return StatusReason::kUnauthorized;
    case 403:
      return StatusReason::kForbidden;
    case 404:
      return StatusReason::kNotFound;
    case 405:
      return StatusReason::kMethodNotAllowed;
    case 409:
      return StatusReason::kConflict;
    case 410:
      return StatusReason::kGone;
    case 422:
      return StatusReason::kInvalid;
    case 429:
      return StatusReason::kTooManyRequests;
    case 500:
      return StatusReason::kInternalError;
    case 503:
      return StatusReason::kServiceUnavailable;
    case 504:
      return StatusReason::kServerTimeout;
    default:
      return StatusReason::kUnknown;
  }
}

// A string member of a Status, or empty: a Status is read from whatever answered, and a field
// of another type must not throw.
std::string Str(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string_view StatusReasonName(StatusReason reason) {
  for (const auto& r : kReasonNames) {
    if (r.reason == reason) return r.name;
  }
  return "Unknown";
}

ApiStatus ApiStatus::FromResponse(int http_status, std::string_view body) {
  StatusReason reason = ReasonFromCode(http_status);
  std::string message;
  ApiStatus status(http_status, reason, {});
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object() && Str(doc, "kind") == "Status") {
    message = Str(doc, "message");
    const std::string name = Str(doc, "reason");
    for (const auto& r : kReasonNames) {
      if (!name.empty() && r.name == name) reason = r.reason;
    }
    if (auto details = doc.find("details"); details != doc.end() && details->is_object()) {
      if (auto causes = details->find("causes"); causes != details->end() && causes->is_array()) {
        for (const auto& c : *causes) {
          if (!c.is_object()) continue;
          status.add_cause({Str(c, "reason"), Str(c, "message"), Str(c, "field")});
        }
      }
      if (auto ra = details->find("retryAfterSeconds");
          ra != details->end() && ra->is_number_integer()) {
        // Bounded: a day is more than any server asks for, and keeps the arithmetic sane.
        const auto seconds = std::clamp<std::int64_t>(ra->get<std::int64_t>(), 0, 86400);
        status.set_retry_after(std::chrono::seconds(seconds));
      }
    }
  } else {
    // Not a Status (a proxy or load balancer answered): keep the start of the body.
    message = Excerpt(body, 200);
  }
  if (message.empty()) message = "HTTP " + std::to_string(http_status);
  status.reason_ = reason;
  status.message_ = std::move(message);
  return status;
}

ApiStatus& ApiStatus::WithContext(std::string_view context) {
  message_ = std::string(context) + ": " + message_;
  return *this;
}

std::string ApiStatus::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusReasonName(reason_));
  if (http_status_ != 0) out += " (" + std::to_string(http_status_) + ")";
  out += ": " + message_;
  for (const auto& c : causes_) {
    out += "; " + (c.field.empty() ? std::string() : c.field + ": ") + c.message;
  }
  return out;
}

}  // namespace capwatch::kube
