// Core server tests (fixture: server_fixture.h). Renditions (issue 13,
// docs/PROTOCOL.md 8.12): servers with one stream name and different
// rendition names form one stream; a client names its rendition or lets
// the server choose, and switches only at a keyframe of the target
// (RENDITION, then the target's caps, then its keyframe; nothing of the
// target before it, nothing of the old one after it).
#include "core/server_fixture.h"

namespace tlsframe {
namespace {

constexpr const char *kHighCaps = "video/x-h264, width=(int)1280, height=(int)720";
constexpr const char *kLowCaps = "video/x-h264, width=(int)640, height=(int)360";
// Buffer indexes: the high rendition publishes from 0, the low one from kLow.
constexpr uint64_t kLow = 1000;

uint16_t free_port() {
  TcpSocket s;
  if (!s.bind_any(false)) return 0;
  return s.port();
}

struct Changes {
  std::mutex lock;
  std::condition_variable cond;
  std::vector<RenditionChange> seen;
};

class RenditionTest : public ServerReceiverTest {
 protected:
  // Two renditions of stream "cam" on one port: "high" (first: the one
  // clients are reported to) and "low". low_first: "low" starts first.
  void start_pair(bool low_first = false) {
    const uint16_t port = free_port();
    ASSERT_NE(port, 0);
    ServerConfig c = server_config();
    c.port = port;
    c.stream_name = "cam";
    c.rendition = "high";
    ServerCallbacks cb = events_.callbacks();
    cb.rendition_changed = [this](const ClientInfo &, const RenditionChange &ch) {
      {
        std::lock_guard<std::mutex> lock(changes_.lock);
        changes_.seen.push_back(ch);
      }
      changes_.cond.notify_all();
    };
    ServerConfig lc = c;
    lc.rendition = "low";
    // Clients are reported to the first sink of the stream.
    ServerCallbacks low_cb = low_first ? events_.callbacks() : ServerCallbacks{};
    low_cb.keyframe_wanted = [this] { low_keyframes_++; };
    if (low_first) {
      auto l = Server::start(lc, low_cb);
      ASSERT_TRUE(l.ok()) << l.error().message;
      low_ = std::move(l.value());
    }
    auto h = Server::start(c, cb);
    ASSERT_TRUE(h.ok()) << h.error().message;
    high_ = std::move(h.value());
    if (!low_first) {
      auto l = Server::start(lc, low_cb);
      ASSERT_TRUE(l.ok()) << l.error().message;
      low_ = std::move(l.value());
    }
    high_->publish_caps(kHighCaps);
    low_->publish_caps(kLowCaps);
  }

  ReceiverConfig cam(const std::string &rendition) const {
    ReceiverConfig rc = receiver_config(high_->port());
    rc.stream_name = "cam";
    rc.rendition = rendition;
    return rc;
  }

  // An automatic viewer joins, `on` publishes keyframe `index` with `caps`
  // (the rendition it should start on): what its WELCOME said.
  std::optional<Welcome> auto_viewer_welcome(Server &on, uint64_t index, const char *caps) {
    auto r = connect_receiver(cam("auto"));
    if (!r) {
      ADD_FAILURE() << "no automatic viewer";
      return std::nullopt;
    }
    publish(on, index, 0);
    EXPECT_TRUE(next_caps(*r, caps));
    EXPECT_TRUE(next_buffer(*r, index));
    return r->welcome();
  }

  bool wait_changes(size_t n) {
    std::unique_lock<std::mutex> lock(changes_.lock);
    return changes_.cond.wait_for(lock, kWait, [&] { return changes_.seen.size() >= n; });
  }

  std::unique_ptr<Server> high_, low_;
  std::atomic<int> low_keyframes_{0};
  Changes changes_;
};

TEST_F(RenditionTest, SinksWithOneStreamNameAndDistinctRenditionsShareAPortAsOneStream) {
  start_pair();
  ASSERT_TRUE(high_ && low_);
  EXPECT_EQ(high_->port(), low_->port());
  // The same rendition twice, or a second sink without one, is refused.
  ServerConfig c = server_config();
  c.port = high_->port();
  c.stream_name = "cam";
  c.rendition = "low";
  auto dup = Server::start(c, {});
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message.find("rendition \"low\""), std::string::npos)
      << dup.error().message;
  c.rendition = "";
  auto plain = Server::start(c, {});
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.error().message.find("distinct `rendition` names"), std::string::npos)
      << plain.error().message;
  // STREAM_LIST shows one stream.
  auto list = Receiver::list_streams(receiver_config(high_->port()));
  ASSERT_TRUE(list.ok()) << list.error().message;
  ASSERT_EQ(list.value().size(), 1u);
  EXPECT_EQ(list.value()[0].name, "cam");
}

TEST_F(RenditionTest, HelloNamesTheRenditionAndWelcomeStatesItAndTheLadder) {
  start_pair();
  ASSERT_TRUE(high_ && low_);
  auto r = connect_receiver(cam("low"));
  ASSERT_TRUE(r);
  publish(*high_, 0, 0);
  publish(*low_, kLow, 0);
  EXPECT_TRUE(next_caps(*r, kLowCaps));
  EXPECT_TRUE(next_buffer(*r, kLow));
  const auto w = r->welcome();
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->stream, "cam");
  EXPECT_EQ(w->rendition, "low");
  EXPECT_EQ(w->renditions, (std::vector<std::string>{"high", "low"}));
  EXPECT_TRUE(poll_until([&] { return low_->stats().clients == 1 && high_->stats().clients == 0; }))
      << "viewers are counted per rendition";
  // Reported to the stream's first sink, which its callbacks belong to.
  EXPECT_EQ(events_.snapshot().added.size(), 1u);
}

TEST_F(RenditionTest, AutomaticOrUnknownRenditionStartsOnTheHighestRate) {
  start_pair();
  ASSERT_TRUE(high_ && low_);
  for (const char *asked : {"", "auto", "nosuch"}) {
    auto r = connect_receiver(cam(asked));
    ASSERT_TRUE(r) << asked;
    publish(*high_, 0, 0);
    EXPECT_TRUE(next_caps(*r, kHighCaps)) << asked;
    EXPECT_TRUE(next_buffer(*r, 0)) << asked;
    EXPECT_EQ(r->welcome()->rendition, "high") << asked;
  }
}

// Before any rendition has a published rate (the server just started), the
// automatic choice takes the largest picture, not the rendition that
// happened to start first.
TEST_F(RenditionTest, BeforeRatesAreKnownAutomaticStartsOnTheLargestPicture) {
  start_pair(/*low_first=*/true);
  ASSERT_TRUE(high_ && low_);
  const auto w = auto_viewer_welcome(*high_, 0, kHighCaps);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->rendition, "high");
}

// Declared rates (the sink's encoder's nominal bitrate) rank the ladder
// once every rendition has one, above the picture's size: here the small
// picture is declared the higher rate, so it comes first and an automatic
// viewer starts on it. One rendition without a rate: the picture decides.
TEST_F(RenditionTest, DeclaredRatesRankTheLadder) {
  start_pair();
  ASSERT_TRUE(high_ && low_);
  high_->declare_rate(500'000);
  const auto one = auto_viewer_welcome(*high_, 0, kHighCaps);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->rendition, "high") << "one rate undeclared: the larger picture";
  low_->declare_rate(2'500'000);
  const auto both = auto_viewer_welcome(*low_, kLow, kLowCaps);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->rendition, "low");
  EXPECT_EQ(both->renditions, (std::vector<std::string>{"low", "high"}));
}

// Equal declared rates (encoders left at one default setting): the larger
// picture first, whichever sink started first.
TEST_F(RenditionTest, EqualDeclaredRatesRankByPicture) {
  start_pair(/*low_first=*/true);
  ASSERT_TRUE(high_ && low_);
  high_->declare_rate(2'048'000);
  low_->declare_rate(2'048'000);
  const auto w = auto_viewer_welcome(*high_, 0, kHighCaps);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->rendition, "high");
  EXPECT_EQ(w->renditions, (std::vector<std::string>{"high", "low"}));
}

TEST_F(RenditionTest, ASwitchWaitsForTheTargetsKeyframeWhichItAsksFor) {
  start_pair();
  ASSERT_TRUE(high_ && low_);
  uint64_t id = 0;
  auto r = connect_receiver(cam("high"), &id);
  ASSERT_TRUE(r);
  publish(*high_, 0, 0);
  publish(*low_, kLow, 0);
  ASSERT_TRUE(next_caps(*r, kHighCaps));
  ASSERT_TRUE(next_buffer(*r, 0));
  // Both renditions have delta units from here on.
  publish(*high_, 1, wire::kFlagDeltaUnit);
  publish(*low_, kLow + 1, wire::kFlagDeltaUnit);
  ASSERT_TRUE(next_buffer(*r, 1));

  const int keyframes_before = low_keyframes_.load();
  ASSERT_EQ(r->request_rendition("low"), SendStatus::kQueued);
  EXPECT_TRUE(poll_until([&] { return low_keyframes_.load() > keyframes_before; }))
      << "the target rendition was not asked for a keyframe";
  // Until the target's keyframe: the current rendition only.
  publish(*low_, kLow + 2, wire::kFlagDeltaUnit);
  publish(*high_, 2, wire::kFlagDeltaUnit);
  EXPECT_TRUE(next_buffer(*r, 2));
  // The target's keyframe: RENDITION, its caps, the keyframe; then only the target.
  publish(*low_, kLow + 3, 0);
  publish(*high_, 3, wire::kFlagDeltaUnit);
  publish(*low_, kLow + 4, wire::kFlagDeltaUnit);
  Received m;
  ASSERT_TRUE(next_of_type(*r, MessageType::kRendition, m));
  EXPECT_EQ(m.rendition, "low");
  EXPECT_EQ(m.reason, "requested");
  EXPECT_TRUE(next_caps(*r, kLowCaps));
  EXPECT_TRUE(next_buffer(*r, kLow + 3));
  EXPECT_TRUE(next_buffer(*r, kLow + 4));

  ASSERT_TRUE(wait_changes(1));
  {
    std::lock_guard<std::mutex> lock(changes_.lock);
    EXPECT_EQ(changes_.seen[0].from, "high");
    EXPECT_EQ(changes_.seen[0].to, "low");
    EXPECT_FALSE(changes_.seen[0].up);
  }
  EXPECT_TRUE(poll_until([&] { return low_->stats().clients == 1 && high_->stats().clients == 0; }));
  auto cs = low_->client_stats(id);
  ASSERT_TRUE(cs.has_value());
  EXPECT_EQ(cs->rendition, "low");
  EXPECT_FALSE(cs->rendition_auto);
  EXPECT_EQ(cs->switches_down, 1u);
  EXPECT_EQ(cs->switches_up, 0u);
  EXPECT_EQ(cs->rendition_reason, "requested");

  // And back up: the same at the high rendition's keyframe.
  ASSERT_EQ(r->request_rendition("high"), SendStatus::kQueued);
  EXPECT_TRUE(poll_until([&] { return events_.snapshot().keyframe_wanted >= 1; }));
  publish(*high_, 4, 0);
  publish(*low_, kLow + 5, wire::kFlagDeltaUnit);
  ASSERT_TRUE(next_of_type(*r, MessageType::kRendition, m));
  EXPECT_EQ(m.rendition, "high");
  EXPECT_TRUE(next_caps(*r, kHighCaps));
  EXPECT_TRUE(next_buffer(*r, 4));
  ASSERT_TRUE(wait_changes(2));
  std::lock_guard<std::mutex> lock(changes_.lock);
  EXPECT_TRUE(changes_.seen[1].up);
}

TEST_F(RenditionTest, ARequestForAMissingRenditionIsIgnored) {
  start_pair();
  ASSERT_TRUE(high_ && low_);
  auto r = connect_receiver(cam("high"));
  ASSERT_TRUE(r);
  publish(*high_, 0, 0);
  ASSERT_TRUE(next_caps(*r, kHighCaps));
  ASSERT_TRUE(next_buffer(*r, 0));
  ASSERT_EQ(r->request_rendition("nosuch"), SendStatus::kQueued);
  EXPECT_EQ(r->request_rendition("bad,name"), SendStatus::kNotSupported);
  publish(*high_, 1, wire::kFlagDeltaUnit);
  EXPECT_TRUE(next_buffer(*r, 1)) << "the client stays where it is, connected";
}

TEST_F(RenditionTest, ClosingDuringASwitchLeavesBothRenditions) {
  start_pair();
  ASSERT_TRUE(high_ && low_);
  auto r = connect_receiver(cam("high"));
  ASSERT_TRUE(r);
  publish(*high_, 0, 0);
  publish(*low_, kLow, wire::kFlagDeltaUnit);
  ASSERT_TRUE(next_caps(*r, kHighCaps));
  ASSERT_TRUE(next_buffer(*r, 0));
  ASSERT_EQ(r->request_rendition("low"), SendStatus::kQueued);
  EXPECT_TRUE(poll_until([&] { return low_keyframes_.load() > 0; }));
  r->stop();
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return l.removed.size() == 1; }));
  EXPECT_TRUE(poll_until([&] { return high_->stats().clients == 0 && low_->stats().clients == 0; }));
  // Publishing on both after the close reaches nobody (no session left subscribed).
  publish(*low_, kLow + 1, 0);
  publish(*high_, 1, 0);
  EXPECT_EQ(high_->client_stats().size(), 0u);
  EXPECT_EQ(low_->client_stats().size(), 0u);
}

}  // namespace
}  // namespace tlsframe
