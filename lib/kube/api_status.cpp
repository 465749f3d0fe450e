#include "kube/api_status.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "base/protobuf_wire.h"
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
  auto set_reason = [&reason](std::string_view name) {
    for (const auto& r : kReasonNames) {
      if (!name.empty() && r.name == name) reason = r.reason;
    }
  };
  auto unwrapped = proto::UnwrapKubernetes(body);
  if (unwrapped.ok() && unwrapped.value().kind == "Status") {
    // A Status in protobuf, the answer to a request that accepted protobuf: metav1.Status
    // {message = 3, reason = 4, details = 5 {causes = 4 {reason = 1, message = 2,
    // field = 3}, retryAfterSeconds = 5}}.
    proto::Reader r(unwrapped.value().raw);
    proto::Field f;
    while (r.Next(f)) {
      if (f.number == 3 && f.type == proto::WireType::kLen) message = ValidUtf8(f.bytes);
      if (f.number == 4 && f.type == proto::WireType::kLen) set_reason(f.bytes);
      if (f.number != 5 || f.type != proto::WireType::kLen) continue;
      proto::Reader d(f.bytes);
      proto::Field df;
      while (d.Next(df)) {
        if (df.number == 5 && df.type == proto::WireType::kVarint) {
          const auto seconds = std::clamp<std::int64_t>(
              static_cast<std::int32_t>(static_cast<std::uint32_t>(df.integer)), 0, 86400);
          status.set_retry_after(std::chrono::seconds(seconds));
        }
        if (df.number != 4 || df.type != proto::WireType::kLen) continue;
        proto::Reader c(df.bytes);
        proto::Field cf;
        StatusCause cause;
        while (c.Next(cf)) {
          if (cf.type != proto::WireType::kLen) continue;
          if (cf.number == 1) cause.reason = ValidUtf8(cf.bytes);
          if (cf.number == 2) cause.message = ValidUtf8(cf.bytes);
          if (cf.number == 3) cause.field = ValidUtf8(cf.bytes);
        }
        status.add_cause(std::move(cause));
      }
    }
    if (!r.error().empty() && message.empty()) message = "malformed protobuf Status: " + r.error();
  } else if (auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
             doc.is_object() && Str(doc, "kind") == "Status") {
    message = Str(doc, "message");
    set_reason(Str(doc, "reason"));
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

int ApiStatus::CodeOf(std::string_view body) {
  if (auto unwrapped = proto::UnwrapKubernetes(body); unwrapped.ok()) {
    int code = 0;
    proto::Reader r(unwrapped.value().raw);
    proto::Field f;
    while (r.Next(f)) {
      if (f.number == 6 && f.type == proto::WireType::kVarint) {
        code = static_cast<std::int32_t>(static_cast<std::uint32_t>(f.integer));
      }
    }
    return code;
  }
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (auto c = doc.is_object() ? doc.find("code") : doc.end();
      doc.is_object() && c != doc.end() && c->is_number_integer()) {
    return c->get<int>();
  }
  return 0;
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
