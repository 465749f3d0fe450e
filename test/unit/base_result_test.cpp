// lib/base/result.h: capwatch's one result type, its Status and its field errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

// Counts the allocations of the calling thread, so a test can show that a block allocates
// nothing. Replacing the global operator new/delete is what the standard allows for this; the
// rest of the test binary allocates through them unchanged.
//
// GCC (-Wmismatched-new-delete) sees only that a block from operator new reaches std::free once
// these are inlined, not that this operator new took it from std::malloc; the pairs below match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
thread_local std::size_t allocations = 0;
}  // namespace

void* operator new(std::size_t size) {
  ++allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
// Every form that a library in this binary may call (simdjson allocates with new (nothrow) and
// new[]), so no block is taken by one allocator and given back to another (ASan checks).
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  ++allocations;
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace capwatch {
namespace {

// Allocations made while `fn` runs on this thread.
template <typename Fn>
std::size_t AllocationsOf(Fn&& fn) {
  const std::size_t before = allocations;
  fn();
  return allocations - before;
}

Result<int> Half(int n) {
  if (n % 2 != 0) return Error("cannot halve " + std::to_string(n));
  return n / 2;
}

Status Check(bool good) {
  if (!good) return Error("bad", {{".spec.x", "must be set"}});
  return {};
}

TEST(Result, HoldsAValueOrAnError) {
  const Result<int> half = Half(8);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half.value(), 4);
  EXPECT_TRUE(half.error().message().empty()) << "an ok result's error is the default";

  const Result<int> odd = Half(7);
  EXPECT_FALSE(odd.ok());
  EXPECT_EQ(odd.error().message(), "cannot halve 7");
  EXPECT_EQ(odd.error().ToString(), "cannot halve 7");
}

TEST(Result, MovesItsValueOut) {
  Result<std::string> long_text = std::string(1000, 'x');
  ASSERT_TRUE(long_text.ok());
  const char* buffer = long_text.value().data();
  const std::string taken = std::move(long_text).value();
  EXPECT_EQ(taken.data(), buffer) << "moved out, not copied";

  // A value that cannot be copied at all.
  Result<std::unique_ptr<int>> owned = std::make_unique<int>(7);
  ASSERT_TRUE(owned.ok());
  const std::unique_ptr<int> mine = std::move(owned).value();
  EXPECT_EQ(*mine, 7);

  Result<std::string> text = std::string("abc");
  EXPECT_EQ(text->size(), 3u) << "operator-> reaches the value";
  text->append("d");
  EXPECT_EQ(text.value(), "abcd");
}

TEST(Result, TakesAnotherErrorType) {
  struct Refusal {
    int code = 0;
  };
  const Result<std::string, Refusal> refused = Refusal{403};
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, 403);
  const Result<std::string, Refusal> granted = std::string("yes");
  EXPECT_TRUE(granted.ok());
  EXPECT_EQ(granted.error().code, 0) << "the default error of an ok result";
}

TEST(Status, IsOkOrCarriesTheError) {
  EXPECT_TRUE(Check(true).ok());
  EXPECT_TRUE(Status().ok());
  EXPECT_TRUE(Status::Ok().ok());
  const Status bad = Check(false);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "bad");
  ASSERT_EQ(bad.error().fields().size(), 1u);
  EXPECT_EQ(bad.error().fields()[0], (FieldError{".spec.x", "must be set"}));
  // Even an error with nothing in it is a failure: being ok is not a property of the message.
  EXPECT_FALSE(Status(Error()).ok());
}

TEST(FieldError, NamesItsField) {
  EXPECT_EQ((FieldError{".spec.containers[0].name", "must be a string"}).ToString(),
            ".spec.containers[0].name: must be a string");
  EXPECT_EQ((FieldError{"", "expected an object"}).ToString(), "expected an object")
      << "no field: the object as a whole";
}

TEST(Error, ToStringNamesEveryField) {
  const Error invalid("CapabilityPolicy web is invalid",
                      {{".spec.profile", "must be one of none, baseline, restricted"},
                       {".spec.requireDropALL", "unknown field"}});
  EXPECT_EQ(invalid.ToString(),
            "CapabilityPolicy web is invalid: .spec.profile: must be one of none, baseline, "
            "restricted; .spec.requireDropALL: unknown field");
  EXPECT_EQ(Error(FieldError{".a", "x"}).ToString(), ".a: x") << "fields without a message";
  EXPECT_EQ(Error("", {{".a", "x"}, {".b", "y"}}).ToString(), ".a: x; .b: y");
  EXPECT_EQ(Error().ToString(), "");
}

TEST(Error, WithContextSaysWhatWasBeingDone) {
  Error e(FieldError{".items[3].metadata.name", "expected a string, got a number"});
  e.WithContext("pod list");
  EXPECT_EQ(e.ToString(), "pod list: .items[3].metadata.name: expected a string, got a number");
  Error read("cannot read /tmp/x");
  read.WithContext("serving certificate").WithContext("metrics");
  EXPECT_EQ(read.ToString(), "metrics: serving certificate: cannot read /tmp/x");
}

// The hot paths (a watch event decoded and applied, a Pod decoded) return a Status or Result
// for every object: success must cost no allocation.
TEST(Status, SuccessAllocatesNothing) {
  int ok = 0;
  EXPECT_EQ(AllocationsOf([&] {
              for (int i = 0; i < 100; ++i) {
                const Status s = Check(true);
                const Status copy = s;
                ok += s.ok() && copy.ok();
              }
            }),
            0u);
  EXPECT_EQ(ok, 100);
  int half = 0;
  EXPECT_EQ(AllocationsOf([&] {
              Result<int> r = Half(10);
              Result<int> moved = std::move(r);
              half = moved.ok() ? moved.value() : -1;
            }),
            0u);
  EXPECT_EQ(half, 5);
  // And the counter does see allocations: a failure with a field error makes some.
  bool failed = false;
  EXPECT_GT(AllocationsOf([&] { failed = !Check(false).ok(); }), 0u);
  EXPECT_TRUE(failed);
}

}  // namespace
}  // namespace capwatch
