// Pods in the API server's protobuf encoding: the wire reader, the Pod decoder against golden
// files written by k8s.io/api's own generated code (test/unit/testdata/*.pb, made from the .json
// beside them by test/e2e/cmd/pod2proto), the list splitter cut at every byte, a protobuf
// Status, and a Pod informer whose list comes as protobuf.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <deque>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/protobuf_wire.h"
#include "controller/pod_informer.h"
#include "kube/api_status.h"
#include "kube/clock.h"
#include "kube/list_splitter.h"
#include "kube/watch_decoder.h"
#include "workload/pod_decoder.h"
#include "workload/pod_proto_decoder.h"

namespace capwatch {
namespace {

std::string Testdata(const std::string& name) {
  std::ifstream in(std::string(CAPWATCH_SOURCE_DIR) + "/test/unit/testdata/" + name,
                   std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << name;
  return ss.str();
}

// Every field of a PodView, one per line, so that a difference shows where it is.
std::string Dump(const PodView& p) {
  std::ostringstream o;
  auto opt = [&o](const char* name, const auto& v) {
    o << name << "=";
    if (v) {
      o << *v;
    } else {
      o << "unset";
    }
    o << "\n";
  };
  o << "pod " << p.namespace_name << "/" << p.name << " uid=" << p.uid
    << " rv=" << p.resource_version << " created=" << p.created << " os=" << p.os << "\n";
  opt("run_as_non_root", p.run_as_non_root);
  opt("run_as_user", p.run_as_user);
  opt("host_users", p.host_users);
  for (const auto& [k, v] : p.labels) o << "label " << k << "=" << v << "\n";
  for (const auto& [k, v] : p.justifications) o << "justification " << k << "=" << v << "\n";
  for (const auto& r : p.owners) {
    o << "owner " << r.api_version << " " << r.kind << " " << r.name << " " << r.uid << " "
      << r.controller << "\n";
  }
  for (const auto& c : p.containers) {
    o << "container " << ContainerTypeName(c.type) << " " << c.name << " " << c.image << "\n";
    for (const auto& a : c.add) o << "  add '" << a << "'\n";
    for (const auto& d : c.drop) o << "  drop '" << d << "'\n";
    opt("  privileged", c.privileged);
    opt("  allow_privilege_escalation", c.allow_privilege_escalation);
    opt("  run_as_non_root", c.run_as_non_root);
    opt("  run_as_user", c.run_as_user);
  }
  for (const auto& u : p.unreadable) {
    o << "unreadable " << u.path << " (" << u.container << "): " << u.reason << "\n";
  }
  return o.str();
}

std::vector<std::string> DumpJsonList(const std::string& json, PodDecoder::ListMeta& meta) {
  PodDecoder decoder;
  std::vector<std::string> out;
  Status s = decoder.DecodePodList(
      json, [&](PodView&& p) { out.push_back(Dump(p)); }, meta);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  return out;
}

std::vector<std::string> DumpProtoList(std::string_view bytes, PodDecoder::ListMeta& meta) {
  std::vector<std::string> out;
  Status s = PodProtoDecoder().DecodePodList(
      bytes, [&](PodView&& p) { out.push_back(Dump(p)); }, meta);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  return out;
}

TEST(PodProtoDecoder, ReadsTheListAsTheJsonDecoderReadsTheSamePods) {
  PodDecoder::ListMeta json_meta, proto_meta;
  const auto from_json = DumpJsonList(Testdata("pods.json"), json_meta);
  const auto from_proto = DumpProtoList(Testdata("pods.pb"), proto_meta);
  ASSERT_EQ(from_json.size(), 6u);
  ASSERT_EQ(from_proto.size(), from_json.size());
  for (std::size_t i = 0; i < from_json.size(); ++i) EXPECT_EQ(from_proto[i], from_json[i]);
  EXPECT_EQ(proto_meta.resource_version, "4242");
  EXPECT_EQ(proto_meta.resource_version, json_meta.resource_version);
  // What the golden Pods hold, read from protobuf (so the comparison is not of two empties).
  EXPECT_NE(from_proto[0].find("add 'NET_BIND_SERVICE'"), std::string::npos) << from_proto[0];
  EXPECT_NE(from_proto[0].find("owner apps/v1 ReplicaSet web-7d9f rs-uid 1"), std::string::npos);
  EXPECT_NE(from_proto[0].find("justification NET_ADMIN=routes for the VPN"), std::string::npos);
  EXPECT_NE(from_proto[0].find("created=1796034030"), std::string::npos) << from_proto[0];
  EXPECT_NE(from_proto[1].find("container ephemeralContainer debugger busybox\n  add 'SYS_PTRACE'"),
            std::string::npos)
      << from_proto[1];
  EXPECT_NE(from_proto[1].find("run_as_user=0"), std::string::npos);
  EXPECT_NE(from_proto[3].find("add ''"), std::string::npos) << from_proto[3];
  EXPECT_NE(from_proto[4].find("label team=données"), std::string::npos);
}

TEST(PodProtoDecoder, ReadsOnePodAsTheJsonDecoderDoes) {
  PodView from_json, from_proto;
  ASSERT_TRUE(PodDecoder().DecodePod(Testdata("pod.json"), from_json).ok());
  Status s = PodProtoDecoder().DecodePod(Testdata("pod.pb"), from_proto);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(Dump(from_proto), Dump(from_json));
  EXPECT_EQ(from_proto.containers.size(), 4u);
}

TEST(PodProtoDecoder, RefusesWhatIsNoPod) {
  PodView pod;
  EXPECT_FALSE(PodProtoDecoder().DecodePod(Testdata("pods.pb"), pod).ok());  // a PodList
  EXPECT_FALSE(PodProtoDecoder().DecodePod(R"({"kind":"Pod"})", pod).ok());
  const std::string status = Testdata("status-expired.pb");
  Status s = PodProtoDecoder().DecodePod(status, pod);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().ToString().find("expected a Pod, got a Status"), std::string::npos);
}

// A Pod message built field by field, for what no encoder of the API server writes.
std::string Container(std::string_view name, std::string_view security_context) {
  std::string c;
  proto::AppendLenField(c, 1, name);
  proto::AppendLenField(c, 15, security_context);
  return c;
}
std::string PodMessage(std::string_view name, std::string_view container) {
  std::string meta, spec, pod;
  proto::AppendLenField(meta, 1, name);
  proto::AppendLenField(meta, 3, "prod");
  proto::AppendLenField(spec, 2, container);
  proto::AppendLenField(pod, 1, meta);
  proto::AppendLenField(pod, 2, spec);
  return pod;
}
std::string ListBody(const std::vector<std::string>& pods) {
  std::string list, body(proto::kKubernetesMagic);
  std::string list_meta;
  proto::AppendLenField(list_meta, 2, "77");
  proto::AppendLenField(list, 1, list_meta);
  for (const auto& p : pods) proto::AppendLenField(list, 2, p);
  proto::AppendLenField(body, 2, list);
  return body;
}

TEST(PodProtoDecoder, AFieldOfTheWrongWireTypeIsUnreadableNotLost) {
  std::string caps, sc;
  proto::AppendVarintField(caps, 1, 12);  // add[0] as a number
  proto::AppendLenField(caps, 1, "NET_ADMIN");
  proto::AppendLenField(sc, 1, caps);
  proto::AppendLenField(sc, 2, "yes");  // privileged as bytes
  PodView pod;
  Status s = PodProtoDecoder().DecodePodMessage(PodMessage("p", Container("app", sc)), pod);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_EQ(pod.containers.size(), 1u);
  EXPECT_EQ(pod.containers[0].add, std::vector<std::string>{"NET_ADMIN"});
  EXPECT_FALSE(pod.containers[0].privileged.has_value());
  ASSERT_EQ(pod.unreadable.size(), 2u);
  EXPECT_EQ(pod.unreadable[0].path, ".spec.containers[0].securityContext.capabilities.add[0]");
  EXPECT_EQ(pod.unreadable[0].reason, "expected a string, got a varint");
  EXPECT_EQ(pod.unreadable[0].container, "app");
  EXPECT_EQ(pod.unreadable[1].path, ".spec.containers[0].securityContext.privileged");
}

TEST(PodProtoDecoder, AMalformedItemIsReportedAndTheOthersAreRead) {
  std::string bad_meta, bad;
  bad_meta += '\x0a';  // name, length 100, 1 byte follows
  bad_meta += 'd';
  bad_meta += 'x';
  bad_meta[1] = 100;
  proto::AppendLenField(bad, 1, bad_meta);
  std::string no_name_type;  // metadata.name as a varint: the Pod cannot be filed
  std::string meta;
  proto::AppendVarintField(meta, 1, 5);
  proto::AppendLenField(no_name_type, 1, meta);
  const std::string body =
      ListBody({PodMessage("a", Container("c", "")), bad, no_name_type, PodMessage("b", "")});
  std::vector<std::string> names;
  std::vector<FieldError> errors;
  PodDecoder::ListMeta meta_out;
  Status s = PodProtoDecoder().DecodePodList(
      body, [&](PodView&& p) { names.push_back(p.name); }, meta_out,
      [&](const FieldError& e) { errors.push_back(e); });
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].field, ".items[1].metadata");
  EXPECT_NE(errors[0].message.find("malformed protobuf"), std::string::npos) << errors[0].message;
  EXPECT_EQ(errors[1].field, ".items[2].metadata.name");
  EXPECT_EQ(meta_out.resource_version, "77");
  // Without a handler, the first such item fails the list.
  EXPECT_FALSE(PodProtoDecoder()
                   .DecodePodList(
                       body, [](PodView&&) {}, meta_out)
                   .ok());
}

TEST(PodProtoDecoder, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  PodView pod;
  ASSERT_TRUE(PodProtoDecoder()
                  .DecodePodMessage(PodMessage("we\xffird", Container("c\xc3", "")), pod)
                  .ok());
  EXPECT_EQ(pod.name, "we\xEF\xBF\xBDird");
  EXPECT_EQ(pod.containers[0].name, "c\xEF\xBF\xBD");
}

TEST(ProtobufWire, RefusesCutAndOverlongFields) {
  proto::Field f;
  for (std::string_view bad : {std::string_view("\x0a\x05"
                                                "abc"),
                               std::string_view("\x08"),
                               std::string_view("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
                               std::string_view("\x00\x01", 2), std::string_view("\x0b")}) {
    proto::Reader r(bad);
    EXPECT_FALSE(r.Next(f));
    EXPECT_FALSE(r.error().empty()) << "for " << bad.size() << " bytes";
  }
  proto::Reader ok(std::string_view("\x08\x96\x01\x12\x02hi", 7));
  ASSERT_TRUE(ok.Next(f));
  EXPECT_EQ(f.integer, 150u);
  ASSERT_TRUE(ok.Next(f));
  EXPECT_EQ(f.bytes, "hi");
  EXPECT_FALSE(ok.Next(f));
  EXPECT_TRUE(ok.error().empty());
}

struct Pages {
  std::vector<std::string> pods;  // Dump of each item, in order
  std::size_t pages = 0;
  bool ok = false;
  std::string error;
};

Pages SplitAndDecode(std::string_view body, std::size_t page_bytes, std::size_t cut,
                     std::size_t step) {
  kube::AnyListSplitter splitter(page_bytes);
  Pages out;
  auto sink = [&out](std::string_view page) {
    ++out.pages;
    PodDecoder::ListMeta meta;
    Status s = PodProtoDecoder().DecodePodList(
        page, [&](PodView&& p) { out.pods.push_back(Dump(p)); }, meta);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    EXPECT_EQ(meta.resource_version, "4242");  // every page carries the list's metadata
    return true;
  };
  out.ok = true;
  auto feed = [&](std::string_view part) {
    for (std::size_t at = 0; at < part.size() && out.ok; at += step) {
      out.ok = splitter.Feed(part.substr(at, step), sink);
    }
  };
  feed(body.substr(0, cut));
  feed(body.substr(cut));
  if (out.ok) out.ok = splitter.Finish(sink);
  out.error = splitter.error();
  EXPECT_TRUE(splitter.is_proto());
  return out;
}

// The same Pods, in order, whatever the page size and wherever the stream is cut.
TEST(ProtoListSplitter, PagesAreListsOfWholeItemsWhereverTheStreamIsCut) {
  const std::string body = Testdata("pods.pb");
  PodDecoder::ListMeta meta;
  const auto whole = DumpProtoList(body, meta);
  ASSERT_EQ(whole.size(), 6u);
  for (std::size_t cut = 0; cut <= body.size(); ++cut) {
    for (std::size_t page_bytes : {1u, 1500u, 1u << 20}) {
      Pages p = SplitAndDecode(body, page_bytes, cut, cut % 2 == 0 ? 4096 : 3);
      ASSERT_TRUE(p.ok) << p.error << " cut at " << cut;
      ASSERT_EQ(p.pods, whole) << "cut at " << cut << ", pages of " << page_bytes;
      if (page_bytes == 1) {
        EXPECT_EQ(p.pages, 7u);  // one an item, and the last, empty
      }
      if (page_bytes == 1u << 20) {
        EXPECT_EQ(p.pages, 1u);
      }
    }
  }
}

// A body that ends anywhere inside its list is refused, never taken for a shorter list.
TEST(ProtoListSplitter, ABodyCutInsideTheListIsRefused) {
  const std::string body = Testdata("pods.pb");
  auto whole = proto::UnwrapKubernetes(body);
  ASSERT_TRUE(whole.ok());
  const std::size_t list_end =
      static_cast<std::size_t>(whole.value().raw.data() - body.data()) + whole.value().raw.size();
  for (std::size_t len = 0; len < list_end; ++len) {
    kube::ProtoListSplitter splitter(1500);
    auto sink = [](std::string_view) { return true; };
    const bool fed = splitter.Feed(std::string_view(body).substr(0, len), sink);
    EXPECT_FALSE(fed && splitter.Finish(sink)) << "a body of " << len << " bytes was accepted";
  }
  kube::ProtoListSplitter splitter(1500);
  auto sink = [](std::string_view) { return true; };
  EXPECT_TRUE(splitter.Feed(body, sink) && splitter.Finish(sink)) << splitter.error();
  EXPECT_EQ(splitter.items(), 6u);
}

TEST(ProtoListSplitter, RefusesWhatIsNoProtobufList) {
  auto sink = [](std::string_view) { return true; };
  kube::ProtoListSplitter a(100);
  EXPECT_FALSE(a.Feed("k8sX", sink));
  kube::ProtoListSplitter b(100);
  std::string no_list(proto::kKubernetesMagic);
  proto::AppendLenField(no_list, 3, "");
  EXPECT_TRUE(b.Feed(no_list, sink));
  EXPECT_FALSE(b.Finish(sink));
  EXPECT_EQ(b.error(), "the protobuf body holds no list");
  kube::ProtoListSplitter c(100);
  std::string item_varint(proto::kKubernetesMagic), list;
  proto::AppendVarintField(list, 2, 1);
  proto::AppendLenField(item_varint, 2, list);
  EXPECT_FALSE(c.Feed(item_varint, sink));
  EXPECT_EQ(c.error(), "an item of the protobuf list is not a message");
}

TEST(ApiStatusProtobuf, AProtobufStatusIsReadLikeAJsonOne) {
  const kube::ApiStatus s = kube::ApiStatus::FromResponse(410, Testdata("status-expired.pb"));
  EXPECT_EQ(s.reason(), kube::StatusReason::kExpired);
  EXPECT_EQ(s.message(),
            "The provided continue parameter is too old to display a consistent list result.");
  ASSERT_EQ(s.causes().size(), 1u);
  EXPECT_EQ(s.causes()[0].field, "spec.x");
  EXPECT_EQ(s.causes()[0].message, "bad value");
  ASSERT_TRUE(s.retry_after().has_value());
  EXPECT_EQ(*s.retry_after(), std::chrono::seconds(3));
  const kube::ApiStatus j = kube::ApiStatus::FromResponse(410, Testdata("status-expired.json"));
  EXPECT_EQ(j.ToString(), s.ToString());
}

// The Pod informer asks for protobuf and files the Pods of a protobuf list, streamed in
// pieces, as it does those of the JSON list of the same Pods.
std::vector<std::string> Frames(std::string_view stream, std::size_t cut, std::size_t step,
                                std::size_t* pending = nullptr) {
  kube::FrameSplitter splitter;
  std::vector<std::string> out;
  auto take = [&out](std::string_view f) { out.emplace_back(f); };
  for (std::string_view part : {stream.substr(0, cut), stream.substr(cut)}) {
    for (std::size_t at = 0; at < part.size(); at += step) {
      EXPECT_TRUE(splitter.Feed(part.substr(at, step), take));
    }
  }
  if (pending != nullptr) *pending = splitter.pending_bytes();
  return out;
}

TEST(ProtobufWatch, FramesAreTheSameWhereverTheStreamIsCut) {
  const std::string stream = Testdata("watch-events.pb");
  const auto whole = Frames(stream, 0, stream.size());
  ASSERT_EQ(whole.size(), 5u);
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    ASSERT_EQ(Frames(stream, cut, cut % 3 == 0 ? 1 : 4096), whole) << "cut at " << cut;
  }
  // A stream that ends inside a frame leaves its bytes pending: the event is not made up.
  for (std::size_t len : {std::size_t{2}, std::size_t{5}, stream.size() - 1}) {
    std::size_t pending = 0;
    const auto frames = Frames(std::string_view(stream).substr(0, len), 0, 64, &pending);
    EXPECT_LT(frames.size(), 5u);
    EXPECT_GT(pending, 0u) << len;
  }
  kube::FrameSplitter huge;
  EXPECT_FALSE(huge.Feed(std::string_view("\x7f\xff\xff\xff", 4), [](std::string_view) {}));
  EXPECT_NE(huge.error().find("more than"), std::string::npos);
}

// Each event as the API server frames it (written by k8s.io/apimachinery's own framer and
// serializer) decodes to the type and object the JSON events hold.
TEST(ProtobufWatch, EventsDecodeAsTheirJsonEvents) {
  const std::string stream = Testdata("watch-events.pb");
  const auto frames = Frames(stream, 0, stream.size());
  const auto json = nlohmann::json::parse(Testdata("watch-events.json"));
  ASSERT_EQ(frames.size(), json.size());
  kube::WatchEventDecoder decoder;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    auto event = decoder.Decode(frames[i]);
    ASSERT_TRUE(event.ok()) << event.error().ToString();
    EXPECT_EQ(kube::WatchEventTypeName(event.value().type), json[i]["type"].get<std::string>());
    const std::string object_json = json[i]["object"].dump();
    if (i < 3) {
      PodView from_proto, from_json;
      ASSERT_TRUE(PodProtoDecoder().DecodePod(event.value().object, from_proto).ok());
      ASSERT_TRUE(PodDecoder().DecodePod(object_json, from_json).ok());
      EXPECT_EQ(Dump(from_proto), Dump(from_json));
    }
    EXPECT_EQ(kube::ResourceVersionOf(event.value().object), kube::ResourceVersionOf(object_json));
  }
  EXPECT_EQ(decoder.slow_path_count(), 0u);
  auto bookmark = decoder.Decode(frames[3]);
  EXPECT_EQ(kube::ResourceVersionOf(bookmark.value().object), "5000");
  auto error = decoder.Decode(frames[4]);
  const kube::ApiStatus status = kube::ApiStatus::FromResponse(0, error.value().object);
  EXPECT_TRUE(status.IsGone());
  EXPECT_EQ(status.message(), "too old resource version: 4000 (4300)");
  EXPECT_EQ(kube::ApiStatus::CodeOf(error.value().object), 410);
  EXPECT_EQ(kube::ApiStatus::CodeOf(json[4]["object"].dump()), 410);
  // A frame that is no WatchEvent is refused with a reason.
  EXPECT_FALSE(decoder.Decode(std::string_view("\x0a\x03" "BAD\x12\x00", 7)).ok());
  EXPECT_FALSE(decoder.Decode(std::string_view("\x0a\x05" "ADDED", 7)).ok());  // no object
  EXPECT_FALSE(decoder.Decode(std::string_view("\x0a\x09" "ADDED", 7)).ok());  // cut
}

class FramesStream final : public kube::WatchStream {
 public:
  explicit FramesStream(std::vector<std::string> frames) : frames_(frames.begin(), frames.end()) {}
  bool NextLine(std::string& line) override {
    if (frames_.empty()) return false;
    line = std::move(frames_.front());
    frames_.pop_front();
    return true;
  }
  const kube::ApiStatus& status() const override { return status_; }

 private:
  std::deque<std::string> frames_;
  kube::ApiStatus status_;
};

class ProtobufListClient final : public kube::KubeClient {
 public:
  explicit ProtobufListClient(std::string body, std::vector<std::string> frames = {})
      : body_(std::move(body)), frames_(std::move(frames)) {}
  kube::Result<std::string> Send(const kube::Request& r, const std::stop_token&) override {
    accepts.push_back(r.accept);
    if (!r.on_body) return body_;
    for (std::size_t at = 0; at < body_.size(); at += 333) {
      if (!r.on_body(std::string_view(body_).substr(at, 333))) break;
    }
    return std::string();
  }
  kube::Result<std::unique_ptr<kube::WatchStream>> Watch(const kube::ResourceRef&,
                                                         const kube::ListOptions& options,
                                                         const std::stop_token&) override {
    watch_protobuf.push_back(options.protobuf);
    if (frames_.empty()) {
      return kube::ApiStatus(0, kube::StatusReason::kCancelled, "no watch in this test");
    }
    return std::unique_ptr<kube::WatchStream>(new FramesStream(frames_));
  }
  std::vector<std::string> accepts;
  std::vector<bool> watch_protobuf;

 private:
  std::string body_;
  std::vector<std::string> frames_;
};

std::vector<std::string> InformerPods(const std::string& body, bool stream, bool protobuf,
                                      std::vector<std::string>& accepts) {
  ProtobufListClient client(body);
  kube::ReflectorOptions o = controller::PodReflectorOptions({}, protobuf);
  o.stream_lists = stream;
  o.page_bytes = 2000;
  controller::PodInformer informer(client, kube::SystemClock(), o);
  std::stop_source stop;
  informer.reflector().Step(stop.get_token());
  EXPECT_TRUE(informer.HasSynced());
  std::vector<std::string> out;
  for (const auto& p : informer.List()) out.push_back(Dump(*p));
  std::sort(out.begin(), out.end());
  accepts = client.accepts;
  return out;
}

TEST(PodInformerProtobuf, FilesTheSamePodsFromAProtobufListAsFromJson) {
  std::vector<std::string> accepts;
  const auto json = InformerPods(Testdata("pods.json"), true, false, accepts);
  ASSERT_EQ(accepts.size(), 1u);
  EXPECT_EQ(accepts[0], "application/json");
  ASSERT_EQ(json.size(), 6u);
  for (bool stream : {true, false}) {
    EXPECT_EQ(InformerPods(Testdata("pods.pb"), stream, true, accepts), json) << stream;
    ASSERT_EQ(accepts.size(), 1u);
    EXPECT_EQ(accepts[0], kube::kAcceptProtobuf);
  }
  // A server that answers JSON to a protobuf request (a kind without protobuf) is read too.
  EXPECT_EQ(InformerPods(Testdata("pods.json"), true, true, accepts), json);
}

// A protobuf list, then a protobuf watch: the events change the cache as their JSON would,
// the bookmark moves the resourceVersion, and the ERROR 410 sends the reflector back to listing.
TEST(PodInformerProtobuf, AppliesTheEventsOfAProtobufWatch) {
  const std::string stream = Testdata("watch-events.pb");
  ProtobufListClient client(Testdata("pods.pb"), Frames(stream, 0, stream.size()));
  controller::PodInformer informer(client, kube::SystemClock(),
                                   controller::PodReflectorOptions({}, true));
  std::stop_source stop;
  EXPECT_EQ(informer.reflector().Step(stop.get_token()), kube::ReflectorState::kWatching);
  ASSERT_EQ(informer.size(), 6u);
  EXPECT_EQ(informer.reflector().Step(stop.get_token()), kube::ReflectorState::kListing);
  ASSERT_EQ(client.watch_protobuf, std::vector<bool>{true});
  EXPECT_EQ(informer.size(), 6u);  // one added, one deleted
  EXPECT_NE(informer.Get("prod", "new-pod"), nullptr);
  EXPECT_EQ(informer.Get("prod", "bare"), nullptr);
  auto web = informer.Get("prod", "web-7d9f-abcde");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->resource_version, "4301");
  EXPECT_EQ(web->containers[0].add, (std::vector<std::string>{"NET_BIND_SERVICE", "SYS_ADMIN"}));
  const kube::ReflectorStats stats = informer.reflector().stats();
  EXPECT_EQ(stats.events, 3u);
  EXPECT_EQ(stats.bookmarks, 1u);
  EXPECT_EQ(stats.relists_gone, 1u);
  EXPECT_EQ(stats.decode_errors, 0u);
}

}  // namespace
}  // namespace capwatch
