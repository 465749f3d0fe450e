#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "kube/list_splitter.h"

namespace capwatch::kube {
namespace {

using nlohmann::json;

// A list as the API server writes it, with strings that hold every character the splitter
// must not take for structure.
std::string List(int items) {
  std::string out =
      R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"42","x":"\\\"},\\"},"items":[)";
  for (int i = 0; i < items; ++i) {
    if (i > 0) out += ',';
    out +=
        R"({"metadata":{"name":"p)" + std::to_string(i) +
        R"(","annotations":{"tricky":"a \"quoted\" ,}]{[ value \\","x":"\\\\","y":"\\\"],\\"}},"spec":{"containers":[{"name":"c","args":["[","]","{","}",","]}]}})";
  }
  out += "]}";
  return out;
}

struct Split {
  std::vector<std::string> pages;
  bool ok = false;
  std::string error;
};

Split SplitAll(std::string_view body, std::size_t page_bytes, std::size_t step) {
  ListSplitter s(page_bytes);
  Split out;
  auto sink = [&out](std::string_view p) {
    out.pages.emplace_back(p);
    return true;
  };
  out.ok = true;
  for (std::size_t at = 0; at < body.size() && out.ok; at += step) {
    out.ok = s.Feed(body.substr(at, step), sink);
  }
  if (out.ok) out.ok = s.Finish(sink);
  out.error = s.error();
  return out;
}

// Every page is a List with the members and a run of whole items; together they hold every
// item once, in order; whatever the split of the bytes.
TEST(ListSplitter, PagesAreListsOfWholeItemsInAnySplit) {
  const std::string body = List(40);
  const json whole = json::parse(body);
  for (std::size_t step : {1u, 2u, 3u, 7u, 64u, 1000u, 100000u}) {
    for (std::size_t page_bytes : {1u, 500u, 4000u, 1u << 20}) {
      Split s = SplitAll(body, page_bytes, step);
      ASSERT_TRUE(s.ok) << s.error;
      json items = json::array();
      for (const std::string& p : s.pages) {
        json page = json::parse(p);  // throws, failing the test, if a page is not JSON
        EXPECT_EQ(page["metadata"]["resourceVersion"], "42");
        EXPECT_EQ(page["kind"], "PodList");
        for (auto& item : page["items"]) items.push_back(item);
      }
      EXPECT_EQ(items, whole["items"]) << "step " << step << ", pages of " << page_bytes;
      if (page_bytes == 1u << 20) {
        EXPECT_EQ(s.pages.size(), 1u);
      }
      if (page_bytes == 1 && step == 1) {
        EXPECT_EQ(s.pages.size(), 40u);  // one an item
      }
    }
  }
}

TEST(ListSplitter, PagesStayNearTheirSize) {
  const std::string body = List(400);
  Split s = SplitAll(body, 8000, 4096);
  ASSERT_TRUE(s.ok) << s.error;
  ASSERT_GT(s.pages.size(), 5u);
  for (std::size_t i = 0; i + 1 < s.pages.size(); ++i) {
    EXPECT_LE(s.pages[i].size(), 8000u + 4096u + 400u) << "page " << i;
  }
}

// Members after the items (as some encoders write them) reach the last page.
TEST(ListSplitter, MembersAfterTheItemsReachTheLastPage) {
  const std::string body =
      R"({"apiVersion":"v1","items":[{"a":1},{"a":2}],"kind":"List","metadata":{"resourceVersion":"9"}} )";
  Split s = SplitAll(body, 1, 5);
  ASSERT_TRUE(s.ok) << s.error;
  const json last = json::parse(s.pages.back());
  EXPECT_EQ(last["metadata"]["resourceVersion"], "9");
  EXPECT_EQ(last["kind"], "List");
}

TEST(ListSplitter, AnEmptyListIsOnePage) {
  Split s = SplitAll(R"({"kind":"PodList","metadata":{"resourceVersion":"3"},"items":[]})", 100, 3);
  ASSERT_TRUE(s.ok) << s.error;
  ASSERT_EQ(s.pages.size(), 1u);
  EXPECT_TRUE(json::parse(s.pages[0])["items"].empty());
}

// The API server writes an empty PartialObjectMetadataList (what a metadata-only list of
// ReplicaSets or Jobs is) with "items": null.
TEST(ListSplitter, NullItemsAreAnEmptyList) {
  const std::string body =
      R"({"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"7"},"items":null})";
  for (std::size_t step = 1; step <= body.size(); ++step) {
    Split s = SplitAll(body, 100, step);
    ASSERT_TRUE(s.ok) << "step " << step << ": " << s.error;
    ASSERT_EQ(s.pages.size(), 1u);
    const json page = json::parse(s.pages[0]);
    EXPECT_TRUE(page["items"].empty());
    EXPECT_EQ(page["metadata"]["resourceVersion"], "7");
  }
  for (std::size_t cut = 0; cut < body.size(); ++cut) {
    EXPECT_FALSE(SplitAll(body.substr(0, cut), 100, 5).ok) << "cut at " << cut;
  }
}

// A list cut at any byte never passes for a whole one.
TEST(ListSplitter, AListCutAtEveryByteFails) {
  const std::string body = List(3);
  for (std::size_t cut = 0; cut < body.size(); ++cut) {
    Split s = SplitAll(body.substr(0, cut), 50, 7);
    EXPECT_FALSE(s.ok) << "cut at " << cut;
    EXPECT_FALSE(s.error.empty());
  }
}

TEST(ListSplitter, MalformedListsNameWhatIsWrong) {
  EXPECT_NE(SplitAll("[1,2]", 10, 10).error.find("not a JSON object"), std::string::npos);
  for (const char* items :
       {R"({"items":{}})", R"({"items":nul})", R"({"items":nulL})", R"({"items":true})"}) {
    EXPECT_NE(SplitAll(items, 10, 10).error.find("items is neither an array nor null"),
              std::string::npos)
        << items;
  }
  EXPECT_NE(SplitAll(R"({"items":[1}]})", 10, 10).error.find("unbalanced"), std::string::npos);
  EXPECT_NE(SplitAll(R"({"items":[]} x)", 10, 10).error.find("after the end"), std::string::npos);
}

TEST(ListSplitter, ASinkThatRefusesStopsTheSplit) {
  ListSplitter s(1);
  int pages = 0;
  auto refuse = [&pages](std::string_view) {
    ++pages;
    return false;
  };
  EXPECT_FALSE(s.Feed(List(5), refuse));
  EXPECT_EQ(pages, 1);
  EXPECT_TRUE(s.error().empty());
}

}  // namespace
}  // namespace capwatch::kube
