// Relay chains (issue 10) with real elements in one process: origin (x264enc,
// 10 s GOP) -> relay1 -> relay2, each relay `tlsframesrc ! queue !
// tlsframesink` as `tlsframe relay` runs it. Keyframe requests cross the
// relays to the origin's encoder: a viewer of relay2 decodes its first frame
// within 1 s, and gets nothing for seconds when the path is cut at relay2; a
// client of relay2 that fell behind and skipped gets its next keyframe within
// 1 s; a client flooding relay2 with KEYFRAME_REQUESTs causes at most one
// force-key-unit at the encoder per keyframe-request-interval while the other
// clients keep every frame.
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/pki.h"
#include "common/raw_tls.h"
#include "core/wire_format.h"
#include "core/wire_v2.h"
#include "element/gst_util.h"

namespace tlsframe::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kWait{10000};  // bound for any one condition
// Past the merge interval of every sink in the chain (1 s default), so that a
// new request goes upstream at once instead of waiting for the interval's end.
constexpr std::chrono::milliseconds kSettle{1300};

long long ms(Clock::duration d) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

bool is_force_key_unit(GstEvent *e) {
  return GST_EVENT_TYPE(e) == GST_EVENT_CUSTOM_UPSTREAM && gst_video_event_is_force_key_unit(e);
}

// What happens at the origin's encoder, seen on its src pad: the buffers it
// makes (keyframes = no DELTA_UNIT) and the upstream force-key-unit events
// that reach it. Probes run on streaming threads; the test reads snapshots.
class EncoderLog {
 public:
  void attach(GstElement *encoder) {
    GstPad *pad = gst_element_get_static_pad(encoder, "src");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, this, nullptr);
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, on_event, this, nullptr);
    gst_object_unref(pad);
  }
  size_t frames_since(Clock::time_point t) { return count_since(frames_, t); }
  size_t keyframes_since(Clock::time_point t) { return count_since(keyframes_, t); }
  size_t requests_since(Clock::time_point t) { return count_since(requests_, t); }
  std::vector<Clock::time_point> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  std::optional<Clock::time_point> first_keyframe_since(Clock::time_point t) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto k : keyframes_) {
      if (k >= t) return k;
    }
    return std::nullopt;
  }
  Clock::time_point last_keyframe() {
    std::lock_guard<std::mutex> lock(mutex_);
    return keyframes_.empty() ? Clock::time_point{} : keyframes_.back();
  }
  Clock::time_point last_request() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_.empty() ? Clock::time_point{} : requests_.back();
  }

 private:
  static GstPadProbeReturn on_buffer(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<EncoderLog *>(data);
    const bool key =
        !GST_BUFFER_FLAG_IS_SET(GST_PAD_PROBE_INFO_BUFFER(info), GST_BUFFER_FLAG_DELTA_UNIT);
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->frames_.push_back(Clock::now());
    if (key) self->keyframes_.push_back(Clock::now());
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn on_event(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<EncoderLog *>(data);
    if (is_force_key_unit(GST_PAD_PROBE_INFO_EVENT(info))) {
      std::lock_guard<std::mutex> lock(self->mutex_);
      self->requests_.push_back(Clock::now());
    }
    return GST_PAD_PROBE_OK;
  }
  size_t count_since(const std::vector<Clock::time_point> &v, Clock::time_point t) {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<size_t>(v.end() - std::lower_bound(v.begin(), v.end(), t));
  }

  std::mutex mutex_;  // protects the three lists (in time order)
  std::vector<Clock::time_point> frames_;
  std::vector<Clock::time_point> keyframes_;
  std::vector<Clock::time_point> requests_;
};

// Buffers through a pad: arrival time and offset (tlsframesrc: the server's
// sequence number).
class BufferLog {
 public:
  void attach(GstElement *element, const char *pad_name) {
    GstPad *pad = gst_element_get_static_pad(element, pad_name);
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, this, nullptr);
    gst_object_unref(pad);
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return times_.size();
  }
  std::optional<Clock::time_point> first() {
    std::lock_guard<std::mutex> lock(mutex_);
    return times_.empty() ? std::nullopt : std::optional<Clock::time_point>(times_.front());
  }
  size_t count_since(Clock::time_point t) {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<size_t>(times_.end() - std::lower_bound(times_.begin(), times_.end(), t));
  }
  // Offsets that do not follow the previous one (a buffer lost in between).
  size_t gaps() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t n = 0;
    for (size_t i = 1; i < offsets_.size(); ++i) n += offsets_[i] != offsets_[i - 1] + 1;
    return n;
  }
  Waiter waiter;

 private:
  static GstPadProbeReturn on_buffer(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<BufferLog *>(data);
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      self->times_.push_back(Clock::now());
      self->offsets_.push_back(GST_BUFFER_OFFSET(GST_PAD_PROBE_INFO_BUFFER(info)));
    }
    self->waiter.notify();
    return GST_PAD_PROBE_OK;
  }

  std::mutex mutex_;  // protects times_ and offsets_
  std::vector<Clock::time_point> times_;
  std::vector<guint64> offsets_;
};

// The chain origin -> relay1 -> relay2 on 127.0.0.1, every port chosen by the
// system (port=0 and current-port).
class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_gstreamer();
    // The flooding raw client writes to a connection the server has closed.
    std::signal(SIGPIPE, SIG_IGN);
  }

  std::string sink_desc(const std::string &extra = "") const {
    return "tlsframesink name=sink host=127.0.0.1 port=0 cert-file=" + pki_.server_cert() +
           " key-file=" + pki_.server_key() + " " + extra;
  }
  std::string src_desc(int port) const {
    return "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) +
           " ca-file=" + pki_.ca();
  }

  // Starts the chain; returns once relay2's sink has buffers and the merge
  // interval of every sink has passed since the last request (the joins of
  // the relays asked for keyframes).
  void start_chain(const std::string &relay2_sink_extra = "") {
    // speed-preset=ultrafast keeps the encoder light on a loaded machine.
    origin_ = std::make_unique<Pipeline>(
        "videotestsrc is-live=true pattern=ball ! "
        "video/x-raw,width=320,height=240,framerate=30/1 ! "
        "x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=300 ! h264parse ! " +
        sink_desc());
    ASSERT_TRUE(origin_->ok());
    encoder_.attach(origin_->element("enc"));
    ASSERT_NE(origin_->set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE)
        << pending_errors(*origin_);
    const int origin_port = current_port(origin_->element("sink"));
    ASSERT_GT(origin_port, 0);

    // The relay as pipelines/relay.pipeline (tlsframe relay) has it.
    const std::string queue = " ! queue max-size-buffers=64 max-size-bytes=0 max-size-time=0 ! ";
    relay1_ = std::make_unique<Pipeline>(src_desc(origin_port) + queue + sink_desc());
    ASSERT_TRUE(relay1_->ok());
    ASSERT_NE(relay1_->set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE)
        << pending_errors(*relay1_);
    const int relay1_port = current_port(relay1_->element("sink"));
    ASSERT_GT(relay1_port, 0);

    relay2_ =
        std::make_unique<Pipeline>(src_desc(relay1_port) + queue + sink_desc(relay2_sink_extra));
    ASSERT_TRUE(relay2_->ok());
    relay2_in_.attach(relay2_->element("sink"), "sink");
    ASSERT_NE(relay2_->set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE)
        << pending_errors(*relay2_);
    relay2_port_ = current_port(relay2_->element("sink"));
    ASSERT_GT(relay2_port_, 0);

    ASSERT_TRUE(relay2_in_.waiter.wait_for([&] { return relay2_in_.count() >= 1; }, kWait))
        << "relay2 got no buffer: " << pending_errors(*relay1_) << pending_errors(*relay2_);
    settle_from(*relay2_in_.first());
  }

  // Waits (bounded) until kSettle has passed since `t` and since the last
  // force-key-unit that reached the encoder.
  void settle_from(Clock::time_point t) {
    Waiter poll;  // re-checks every 50 ms
    ASSERT_TRUE(poll.wait_for(
        [&] {
          const auto now = Clock::now();
          return now - t >= kSettle && now - encoder_.last_request() >= kSettle;
        },
        kWait));
  }

  // A client of relay2 that decodes: tlsframesrc ! h264parse ! avdec_h264 ! appsink.
  std::unique_ptr<Pipeline> viewer() const {
    return std::make_unique<Pipeline>(src_desc(relay2_port_) +
                                      " ! h264parse ! avdec_h264 ! appsink name=out sync=false");
  }

  // The next natural keyframe (key-int-max=300 at 30 fps) is at least this far away.
  Clock::duration natural_keyframe_in() { return encoder_.last_keyframe() + 10s - Clock::now(); }

  Pki pki_;
  EncoderLog encoder_;
  BufferLog relay2_in_;  // buffers into relay2's sink
  std::unique_ptr<Pipeline> origin_, relay1_, relay2_;
  int relay2_port_ = 0;
};

TEST_F(RelayTest, ViewerOfTheSecondRelayDecodesItsFirstFrameWithinOneSecondOnATenSecondGop) {
  start_chain();
  if (HasFatalFailure()) return;
  const auto natural = natural_keyframe_in();
  EXPECT_GT(natural, 5s) << "the natural keyframe should be far away";
  auto v = viewer();
  ASSERT_TRUE(v->ok());
  const auto joined = Clock::now();
  ASSERT_NE(gst_element_set_state(v->get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto decoded = pull_samples(v->element("out"), 1, 5s);
  const auto first_frame = Clock::now() - joined;
  ASSERT_EQ(decoded.size(), 1u) << "no decoded frame: " << pending_errors(*v);
  unref_samples(decoded);
  const auto keyframe = encoder_.first_keyframe_since(joined);
  std::printf(
      "relay chain origin -> relay1 -> relay2 -> viewer, 10 s GOP: first decoded frame "
      "%lld ms after PLAYING; the encoder's keyframe %lld ms after it; the natural one "
      "was %lld ms away\n",
      ms(first_frame), keyframe ? ms(*keyframe - joined) : -1LL, ms(natural));
  EXPECT_LT(first_frame, 1s) << "first decoded frame took " << ms(first_frame) << " ms";
  EXPECT_GE(encoder_.requests_since(joined), 1u)
      << "the viewer's join did not reach the origin's encoder as a force-key-unit";
  EXPECT_TRUE(keyframe.has_value()) << "the viewer did not start on a forced keyframe";
  EXPECT_TRUE(v->problems().empty()) << v->problems()[0];
}

// The control: the same chain with force-key-unit dropped where it leaves
// relay2's sink for its source. The viewer gets nothing until the natural
// keyframe, seconds away.
TEST_F(RelayTest, WithoutTheRequestPathTheViewerWaitsForTheNaturalKeyframe) {
  start_chain();
  if (HasFatalFailure()) return;
  std::atomic<int> dropped{0};
  GstPad *pad = gst_element_get_static_pad(relay2_->element("src"), "src");
  gst_pad_add_probe(
      pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM,
      [](GstPad *, GstPadProbeInfo *info, gpointer data) -> GstPadProbeReturn {
        if (!is_force_key_unit(GST_PAD_PROBE_INFO_EVENT(info))) return GST_PAD_PROBE_OK;
        (*static_cast<std::atomic<int> *>(data))++;
        return GST_PAD_PROBE_DROP;
      },
      &dropped, nullptr);
  gst_object_unref(pad);
  constexpr auto kWindow = 2s;
  ASSERT_GT(natural_keyframe_in(), kWindow + 1s) << "the natural keyframe is too close";
  auto v = viewer();
  ASSERT_TRUE(v->ok());
  const auto joined = Clock::now();
  ASSERT_NE(gst_element_set_state(v->get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto decoded = pull_samples(v->element("out"), 1, kWindow);
  EXPECT_EQ(decoded.size(), 0u) << "a frame decoded with no keyframe request path";
  unref_samples(decoded);
  EXPECT_GE(dropped.load(), 1) << "relay2's sink should have asked for a keyframe";
  EXPECT_EQ(encoder_.keyframes_since(joined), 0u);
  EXPECT_EQ(encoder_.requests_since(joined), 0u);
}

// What a raw client reads of one message.
struct Received {
  wire::MessageType type = wire::MessageType::kCaps;
  uint32_t flags = 0;
  uint64_t sequence = 0;
};

// Reads whole messages from a RawTlsClient (made with an io_timeout, so each
// read returns within it).
class MessageStream {
 public:
  MessageStream(RawTlsClient &client, wire::Protocol protocol)
      : client_(client), protocol_(protocol), reader_(protocol, wire::kDefaultMaxPayload) {}

  // The next message before the deadline; nullopt on close, error or timeout.
  std::optional<Received> next(Clock::time_point deadline) {
    while (Clock::now() < deadline) {
      wire::MessageReader::Space space = reader_.prepare();
      if (space.size == 0) return std::nullopt;
      size_t n = 0;
      if (SSL_read_ex(client_.ssl(), space.data, space.size, &n) != 1) {
        const int err = SSL_get_error(client_.ssl(), 0);
        if (err == SSL_ERROR_WANT_READ ||
            (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))) {
          continue;  // the io_timeout passed: check the deadline
        }
        return std::nullopt;
      }
      wire::DecodeResult r = reader_.commit(n);
      if (r.status == wire::DecodeStatus::kError) return std::nullopt;
      if (r.status == wire::DecodeStatus::kNeedMore) continue;
      auto bytes = reader_.take();
      wire::MessageView v;
      if (wire::decode(bytes->data(), bytes->size(), wire::kDefaultMaxPayload, protocol_, v)
              .status != wire::DecodeStatus::kMessage) {
        return std::nullopt;
      }
      return Received{v.type, v.meta.flags, v.meta.sequence};
    }
    return std::nullopt;
  }
  // The next BUFFER without DELTA_UNIT before the deadline.
  std::optional<Received> next_keyframe(Clock::time_point deadline) {
    while (auto m = next(deadline)) {
      if (m->type == wire::MessageType::kBuffer && !(m->flags & wire::kFlagDeltaUnit)) return m;
    }
    return std::nullopt;
  }

 private:
  RawTlsClient &client_;
  wire::Protocol protocol_;
  wire::MessageReader reader_;
};

// A client of relay2 reads normally, stops reading until its queue at
// relay2's sink overflows (it skips), then reads again: relay2 asks upstream,
// the request crosses relay1 to the origin's encoder, and the client's next
// keyframe arrives within 1 s of the skip.
TEST_F(RelayTest, ClientThatSkippedGetsItsNextKeyframeWithinOneSecondThroughTwoRelays) {
  // Small queue and socket buffers at relay2 so the stalled client overflows in
  // a few frames, well within the sink's client timeout.
  start_chain("buffers-max=4 send-buffer-size=4096");
  if (HasFatalFailure()) return;
  GstElement *sink2 = relay2_->element("sink");
  RawTlsClient client;
  RawTlsOptions o;
  o.ca_file = pki_.ca();
  o.verify_name = "127.0.0.1";
  o.rcvbuf = 4096;
  o.io_timeout = 100ms;
  ASSERT_TRUE(client.connect(relay2_port_, o)) << client.error();
  const auto joined = Clock::now();
  MessageStream stream(client, wire::Protocol::kV1Client);
  ASSERT_TRUE(stream.next_keyframe(joined + kWait)) << "no first keyframe";
  // Reads past the merge interval of the join's request, then stalls.
  while (Clock::now() - joined < kSettle) {
    ASSERT_TRUE(stream.next(joined + kWait)) << "the stream stopped";
  }
  const guint64 dropped_before = sink_stat(sink2, "frames-dropped");
  const auto stalled = Clock::now();
  Waiter poll;  // re-checks every 50 ms
  ASSERT_TRUE(
      poll.wait_for([&] { return sink_stat(sink2, "frames-dropped") > dropped_before; }, 4000ms))
      << "the stalled client never skipped";
  const auto skipped = Clock::now();  // within 50 ms after the skip
  ASSERT_GT(natural_keyframe_in(), 2s) << "the natural keyframe is too close";
  auto key = stream.next_keyframe(skipped + kWait);
  const auto got = Clock::now();
  ASSERT_TRUE(key) << "no keyframe after the skip";
  const auto made = encoder_.first_keyframe_since(stalled);
  std::printf(
      "client of relay2 skipped %lld ms after it stalled; next keyframe %lld ms after the "
      "skip (encoder made it %lld ms after the skip)\n",
      ms(skipped - stalled), ms(got - skipped), made ? ms(*made - skipped) : -1LL);
  EXPECT_LT(got - skipped, 1s);
  EXPECT_TRUE(made.has_value()) << "the keyframe was not one the encoder made after the stall";
  EXPECT_GE(encoder_.requests_since(stalled), 1u) << "the skip did not reach the encoder";
}

// A raw protocol version 2 client of relay2 sends 1,000 KEYFRAME_REQUESTs a
// second (reconnecting each time relay2 cuts it for its rate), while a
// tlsframesrc client of relay2 watches.
TEST_F(RelayTest, KeyframeRequestFloodCausesAtMostOneEncoderEventPerIntervalOthersKeepFullRate) {
  start_chain();
  if (HasFatalFailure()) return;
  guint64 interval_ns = 0;
  g_object_get(relay2_->element("sink"), "keyframe-request-interval", &interval_ns, nullptr);
  const auto interval = std::chrono::nanoseconds(interval_ns);
  ASSERT_GT(interval.count(), 0);

  Pipeline good(src_desc(relay2_port_) +
                " ! appsink name=out sync=false max-buffers=1000 drop=true");
  ASSERT_TRUE(good.ok());
  BufferLog received;
  received.attach(good.element("src"), "src");
  ASSERT_NE(gst_element_set_state(good.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(received.waiter.wait_for([&] { return received.count() >= 1; }, kWait))
      << pending_errors(good);
  settle_from(*received.first());
  if (HasFatalFailure()) return;
  ASSERT_EQ(received.gaps(), 0u);

  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  ASSERT_NE(ctx, nullptr);
  SSL_CTX_load_verify_locations(ctx.get(), pki_.ca().c_str(), nullptr);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_alpn_protos(ctx.get(), wire::kAlpnOfferV2, sizeof wire::kAlpnOfferV2);
  const std::vector<uint8_t> hello = wire::encode_hello({{"stream", ""}});
  const std::vector<uint8_t> request = wire::encode_keyframe_request();
  std::string batch;  // 10 requests: one batch every 10 ms is 1,000 a second
  for (int i = 0; i < 10; ++i) batch.append(request.begin(), request.end());

  constexpr auto kFlood = 2s;
  size_t sent = 0, connections = 0;
  const auto t0 = Clock::now();
  const auto end = t0 + kFlood;
  std::unique_ptr<RawTlsClient> flooder;
  auto next_batch = t0;
  // Bounded by `end`: each connect and write is bounded by the io_timeout.
  while (Clock::now() < end) {
    if (!flooder) {
      flooder = std::make_unique<RawTlsClient>();
      RawTlsOptions o;
      o.verify_name = "127.0.0.1";
      o.io_timeout = 500ms;
      o.shared_ctx = ctx.get();
      if (!flooder->connect(relay2_port_, o) ||
          !flooder->write(std::string(hello.begin(), hello.end()))) {
        ADD_FAILURE() << "flooding client: " << flooder->error();
        break;
      }
      MessageStream welcome(*flooder, wire::Protocol::kV2Client);
      auto w = welcome.next(Clock::now() + kWait);
      ASSERT_TRUE(w && w->type == wire::MessageType::kWelcome) << "no WELCOME";
      ++connections;
    }
    if (!flooder->write(batch)) {
      flooder.reset();  // relay2 cut it (RATE_LIMITED): connect again
      continue;
    }
    sent += 10;
    next_batch += 10ms;
    std::this_thread::sleep_until(next_batch);  // paces the flood, not a wait for a condition
  }
  flooder.reset();
  const auto flood = Clock::now() - t0;
  // One more interval, so that a request deferred to the interval's end has come.
  Waiter poll;
  poll.wait_for([] { return false; },
                std::chrono::duration_cast<std::chrono::milliseconds>(interval + 500ms));
  const auto window = Clock::now() - t0;

  const auto requests = encoder_.requests();
  const auto first = std::lower_bound(requests.begin(), requests.end(), t0);
  const size_t events = static_cast<size_t>(requests.end() - first);
  const size_t allowed = 1 + static_cast<size_t>(window / interval);
  const size_t encoded = encoder_.frames_since(t0);
  const size_t got = received.count_since(t0);
  std::printf(
      "%zu KEYFRAME_REQUESTs in %lld ms over %zu connections to relay2: %zu force-key-unit "
      "events at the encoder in %lld ms (at most %zu allowed); the other client got %zu "
      "buffers while the encoder made %zu, %zu gaps\n",
      sent, ms(flood), connections, events, ms(window), allowed, got, encoded, received.gaps());
  EXPECT_GE(sent, 1000u) << "the flood was too small to prove anything";
  EXPECT_LE(events, allowed);
  for (auto it = first; it != requests.end() && it + 1 != requests.end(); ++it) {
    EXPECT_GE(*(it + 1) - *it, interval - 100ms) << "two encoder events within one interval";
  }
  EXPECT_EQ(received.gaps(), 0u) << "the other client lost buffers";
  // Full rate: everything the encoder made, but for the few still in flight.
  EXPECT_GE(got + 5, encoded);
}

}  // namespace
}  // namespace tlsframe::test
