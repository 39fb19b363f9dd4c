// Renditions from the command line (issue 13): `tlsframe serve --rendition` makes one
// stream of several H.264 encodings of one capture (a real serve process with a test
// pattern on a free port), a tlsframesrc viewer asking for the low rendition gets caps of
// its size and an automatic viewer the high one, a viewer switched while playing gets the
// new size on the same connection; `tlsframe view --rendition` passes its choice and prints
// the rendition it is on and each switch (against a raw version 2 server that switches it);
// bad --rendition values are usage errors naming the option.
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/raw_v2_server.h"
#include "core/wire_v2.h"
#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

using Clock = std::chrono::steady_clock;

// A viewer in this process: tlsframesrc (uri, ca-file, rendition) -> fakesink. Records the
// size of the caps leaving the source, buffers since those caps, and the renditions the
// element messages state.
class RenditionViewer {
 public:
  RenditionViewer(const std::string &uri, const std::string &ca_file, const std::string &rendition)
      : pipeline_("tlsframesrc name=src ! fakesink name=out sync=false async=false") {
    if (!pipeline_.ok()) return;
    g_object_set(pipeline_.src(), "uri", uri.c_str(), "ca-file", ca_file.c_str(), "rendition",
                 rendition.c_str(), nullptr);
    pipeline_.probe(static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM |
                                                 GST_PAD_PROBE_TYPE_BUFFER),
                    &RenditionViewer::on_data, this);
    pipeline_.play([this](GstMessage *msg) { on_message(msg); });
  }
  RenditionViewer(const RenditionViewer &) = delete;
  RenditionViewer &operator=(const RenditionViewer &) = delete;

  // Asks for another rendition while playing (RENDITION_REQUEST).
  void set_rendition(const std::string &rendition) {
    g_object_set(pipeline_.src(), "rendition", rendition.c_str(), nullptr);
  }
  // Waits until `n` buffers arrived after caps of w x h.
  bool wait_size(int w, int h, uint64_t n, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cond_.wait_until(lock, deadline,
                            [&] { return width_ == w && height_ == h && since_caps_ >= n; });
  }
  // Waits for a tlsframesrc-rendition message naming `rendition`; its reason.
  std::optional<std::string> wait_switch(const std::string &rendition, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cond_.wait_until(lock, deadline, [&] { return switched_to_ == rendition; })) {
      return std::nullopt;
    }
    return reason_;
  }
  std::string connected_rendition() {
    std::lock_guard<std::mutex> lock(mutex_);
    return connected_rendition_;
  }
  int connected() {
    std::lock_guard<std::mutex> lock(mutex_);
    return connected_;
  }
  uint64_t keyframes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return keyframes_;
  }
  // Waits until more than `n` keyframes arrived.
  bool wait_keyframes_over(uint64_t n, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cond_.wait_until(lock, deadline, [&] { return keyframes_ > n; });
  }
  bool discont_after_switch() {
    std::lock_guard<std::mutex> lock(mutex_);
    return discont_after_switch_;
  }
  std::string report() {
    std::lock_guard<std::mutex> lock(mutex_);
    return "caps " + std::to_string(width_) + "x" + std::to_string(height_) + ", " +
           std::to_string(since_caps_) + " buffers since, connected " + std::to_string(connected_) +
           " (rendition " + connected_rendition_ + "), switched to '" + switched_to_ + "' (" +
           reason_ + "), errors: " + errors_;
  }

 private:
  static GstPadProbeReturn on_data(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<RenditionViewer *>(data);
    std::lock_guard<std::mutex> lock(self->mutex_);
    if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
      GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
      if (self->awaiting_discont_) {
        self->discont_after_switch_ = GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT);
        self->awaiting_discont_ = false;
      }
      ++self->since_caps_;
      if (!GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT)) ++self->keyframes_;
    } else if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_CAPS) {
      GstCaps *caps;
      gst_event_parse_caps(GST_PAD_PROBE_INFO_EVENT(info), &caps);
      const GstStructure *s = gst_caps_get_structure(caps, 0);
      gst_structure_get_int(s, "width", &self->width_);
      gst_structure_get_int(s, "height", &self->height_);
      self->since_caps_ = 0;
    }
    self->cond_.notify_all();
    return GST_PAD_PROBE_OK;
  }

  void on_message(GstMessage *msg) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      errors_ += error_text(msg) + "; ";
    } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ELEMENT) {
      const GstStructure *s = gst_message_get_structure(msg);
      if (gst_structure_has_name(s, "tlsframesrc-connected")) {
        ++connected_;
        const gchar *r = gst_structure_get_string(s, "rendition");
        connected_rendition_ = r ? r : "";
      } else if (gst_structure_has_name(s, "tlsframesrc-rendition")) {
        const gchar *r = gst_structure_get_string(s, "rendition");
        const gchar *why = gst_structure_get_string(s, "reason");
        switched_to_ = r ? r : "";
        reason_ = why ? why : "";
        awaiting_discont_ = true;
      }
    }
    cond_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cond_;
  // Guarded by mutex_:
  int width_ = 0, height_ = 0;
  uint64_t since_caps_ = 0;  // buffers after the last caps
  uint64_t keyframes_ = 0;   // buffers without DELTA_UNIT
  int connected_ = 0;
  std::string connected_rendition_, switched_to_, reason_, errors_;
  bool awaiting_discont_ = false, discont_after_switch_ = false;
  SrcPipeline pipeline_;  // last: stopped before the state its callbacks use goes
};

class RenditionsTest : public ToolTest {
 protected:
  void SetUp() override {
    ToolTest::SetUp();
    gst_init(nullptr, nullptr);
  }
  // The server measures each rendition's published rate over 1 s windows and ranks them by
  // it (the automatic choice starts a viewer on the highest); until a rendition has one, it
  // ranks last. Waits for `n` status lines (--status-interval 1) that show every rendition
  // of `stream_re` publishing.
  static bool wait_publishing(Process &server, const std::string &stream_re, size_t n) {
    return server.wait_nth_line(stream_re, n, 20s).has_value();
  }
};

// One stream, two renditions (small pictures: the test is about the choice, not the
// encoder). The viewer that names the low one gets its size; the automatic one gets the
// high one (a loopback link carries it); a viewer switched while playing gets the other
// size on the same connection, on a DISCONT buffer, and serve prints the switch.
TEST_F(RenditionsTest, ServeRenditionsViewerGetsTheOneItAsksForAutoGetsTheHighOne) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port = start_server(&server, {"serve", "--certs", certs, "--source", "test", "--port", "0",
                                    "--fps", "15", "--status-interval", "1", "--rendition",
                                    "high=320x240@600", "--rendition", "low=160x120@150"});
  ASSERT_NE(port, 0);
  ASSERT_TRUE(wait_publishing(
      *server, "status: high: 0 clients, [1-9][0-9.]* fps.*; low: 0 clients, [1-9][0-9.]* fps", 3))
      << server->transcript();
  EXPECT_TRUE(server->wait_line(
      "H\\.264 renditions high 320x240 600 kbit/s, low 160x120 150 kbit/s at 15 fps", 5s))
      << server->transcript();
  EXPECT_TRUE(
      server->wait_line("renditions high 320x240 600 kbit/s, low 160x120 150 kbit/s; each "
                        "viewer gets the one its link carries",
                        5s))
      << server->transcript();

  const std::string ca = certs + "/ca.pem";
  RenditionViewer low(uri(port), ca, "low");
  RenditionViewer automatic(uri(port), ca, "auto");
  auto deadline = Clock::now() + 20s;
  EXPECT_TRUE(low.wait_size(160, 120, 5, deadline)) << low.report();
  EXPECT_TRUE(automatic.wait_size(320, 240, 5, deadline)) << automatic.report();
  EXPECT_EQ(low.connected_rendition(), "low") << low.report();
  EXPECT_EQ(automatic.connected_rendition(), "high") << automatic.report();

  // Switched while playing: the high size at the next keyframe of high, same connection.
  low.set_rendition("high");
  auto reason = low.wait_switch("high", Clock::now() + 10s);
  ASSERT_TRUE(reason) << low.report();
  EXPECT_EQ(*reason, "requested") << low.report();
  EXPECT_TRUE(low.wait_size(320, 240, 5, Clock::now() + 10s)) << low.report();
  EXPECT_TRUE(low.discont_after_switch()) << low.report();
  EXPECT_EQ(low.connected(), 1) << low.report();
  EXPECT_TRUE(server->wait_line("client [0-9]+: rendition low -> high \\(requested\\)", 5s))
      << server->transcript();
  // The status line counts viewers per rendition.
  EXPECT_TRUE(server->wait_line("high: 2 clients, [0-9.]+ fps.*; low: 0 clients", 15s))
      << server->transcript();

  // tlsframe view --rendition low: the caps it reports and the rendition it is on.
  RunResult view = run_process(cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs", certs,
                                    "--display", "none", "--frames", "5", "--rendition", "low"}),
                               30s, quiet_env());
  EXPECT_EQ(view.status, 0) << view.transcript;
  EXPECT_TRUE(has_line(view.out, "stream: video/x-h264 160x120")) << view.transcript;
  EXPECT_TRUE(has_line(view.out, ", rendition low")) << view.transcript;
  EXPECT_TRUE(has_line(view.out, "end of stream after 5 frames, rendition low")) << view.transcript;
  // Automatic: the high one.
  RunResult view_auto = run_process(cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs",
                                         certs, "--display", "none", "--frames", "5"}),
                                    30s, quiet_env());
  EXPECT_EQ(view_auto.status, 0) << view_auto.transcript;
  EXPECT_TRUE(has_line(view_auto.out, "stream: video/x-h264 320x240")) << view_auto.transcript;
  EXPECT_TRUE(has_line(view_auto.out, "end of stream after 5 frames, rendition high"))
      << view_auto.transcript;
}

// --stream with renditions: every stream gets the ladder, all on one port (--port 0 with
// several sinks), each sink with its stream's name and its own rendition.
TEST_F(RenditionsTest, EveryStreamGetsTheLadder) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port =
      start_server(&server, {"serve", "--certs", certs, "--port", "0", "--fps", "10",
                             "--status-interval", "1", "--stream", "red=test:red", "--stream",
                             "blue=test:blue", "--rendition", "a=160x120@200,b=96x72@100"});
  ASSERT_NE(port, 0);
  ASSERT_TRUE(wait_publishing(*server,
                              "status: red: a: 0 clients, [1-9][0-9.]* fps.*; b: 0 clients, "
                              "[1-9][0-9.]* fps.* \\| blue: a: 0 clients, [1-9][0-9.]* fps.*; "
                              "b: 0 clients, [1-9][0-9.]* fps",
                              3))
      << server->transcript();
  for (const std::string name : {"red", "blue"}) {
    EXPECT_TRUE(server->wait_line(
        "stream " + name + ": renditions a 160x120 200 kbit/s, b 96x72 100 kbit/s", 5s))
        << server->transcript();
  }
  const std::string ca = certs + "/ca.pem";
  RenditionViewer red_b(uri(port, "red"), ca, "b");
  RenditionViewer blue_auto(uri(port, "blue"), ca, "auto");
  auto deadline = Clock::now() + 20s;
  EXPECT_TRUE(red_b.wait_size(96, 72, 3, deadline)) << red_b.report();
  EXPECT_TRUE(blue_auto.wait_size(160, 120, 3, deadline)) << blue_auto.report();
  EXPECT_EQ(red_b.connected_rendition(), "b") << red_b.report();
  EXPECT_EQ(blue_auto.connected_rendition(), "a") << blue_auto.report();
}

// A stream with two sources and two renditions: `switch` on serve's standard input asks
// every rendition's encoder for a keyframe (a tee passes an upstream event up one branch
// only), so viewers of both renditions get one at once, not at the next GOP (1000 frames).
TEST_F(RenditionsTest, SourceSwitchGivesEveryRenditionAKeyframe) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  const int port = start_server(
      &server,
      {"serve", "--certs", certs, "--port", "0", "--fps", "15", "--gop", "1000", "--stream",
       "cam=test:red", "--stream", "cam=test:blue", "--rendition", "a=160x120@200,b=96x72@100"},
      quiet_env(), Process::Stdin::kPipe);
  ASSERT_NE(port, 0);
  ASSERT_TRUE(server->wait_line("commands on standard input: switch", 5s)) << server->transcript();
  const std::string ca = certs + "/ca.pem";
  RenditionViewer a(uri(port, "cam"), ca, "a");
  RenditionViewer b(uri(port, "cam"), ca, "b");
  auto deadline = Clock::now() + 20s;
  ASSERT_TRUE(a.wait_size(160, 120, 5, deadline)) << a.report();
  ASSERT_TRUE(b.wait_size(96, 72, 5, deadline)) << b.report();
  const uint64_t keys_a = a.keyframes(), keys_b = b.keyframes();
  ASSERT_TRUE(server->write_stdin("switch cam 1\n"));
  ASSERT_TRUE(server->wait_line("stream cam: switched to \\[1\\] test:blue", 5s))
      << server->transcript();
  EXPECT_TRUE(a.wait_keyframes_over(keys_a, Clock::now() + 3s)) << a.report();
  EXPECT_TRUE(b.wait_keyframes_over(keys_b, Clock::now() + 3s)) << b.report();
}

// --rendition default is the camera ladder: 720p at 2.5 Mbit/s and 360p at 500 kbit/s, one
// capture at 1280x720 into a tee, as the printed pipeline shows.
TEST_F(RenditionsTest, DefaultLadderInThePrintedPipeline) {
  std::string certs = make_certs();
  RunResult r = run_process(cmd({"serve", "--certs", certs, "--source", "test", "--rendition",
                                 "default", "--print-pipeline"}),
                            30s, quiet_env());
  ASSERT_EQ(r.status, 0) << r.transcript;
  const std::string &t = r.transcript;
  EXPECT_NE(t.find("width=1280,height=720,framerate=30/1 ! tee name=tee"), std::string::npos) << t;
  EXPECT_NE(t.find("tee. ! queue"), std::string::npos) << t;
  EXPECT_NE(t.find("video/x-raw,width=640,height=360 ! x264enc bitrate=500"), std::string::npos)
      << t;
  EXPECT_NE(t.find("x264enc bitrate=2500"), std::string::npos) << t;
  EXPECT_NE(t.find("name=sink-r0"), std::string::npos) << t;
  EXPECT_NE(t.find("name=sink-r1"), std::string::npos) << t;
  EXPECT_NE(t.find("rendition=720p"), std::string::npos) << t;
  EXPECT_NE(t.find("rendition=360p"), std::string::npos) << t;
  // Without --rendition, H.264 stays one encoding with the single-stream names.
  RunResult one = run_process(
      cmd({"serve", "--certs", certs, "--source", "test", "--codec", "h264", "--print-pipeline"}),
      30s, quiet_env());
  ASSERT_EQ(one.status, 0) << one.transcript;
  EXPECT_EQ(one.transcript.find("tee"), std::string::npos) << one.transcript;
  EXPECT_NE(one.transcript.find("name=sink "), std::string::npos) << one.transcript;
}

// A bad --rendition is a usage error (exit 2) whose one line names the option.
TEST_F(RenditionsTest, BadRenditionValuesAreClearErrors) {
  std::string certs = make_certs();
  const std::vector<std::vector<std::string>> bad = {
      {"--rendition", "720p"},
      {"--rendition", "720p=1280x720"},
      {"--rendition", "auto=640x360@500"},
      {"--rendition", ".x=640x360@500"},
      {"--rendition", "a=641x360@500"},
      {"--rendition", "a=640x360@0"},
      {"--rendition", "a=640x360@500,"},
      {"--rendition", "a=640x360@500,a=320x180@200"},
      {"--rendition", "default,a=320x180@200"},
      {"--rendition", "a=640x360@500", "--codec", "jpeg"},
      {"--rendition", "a=640x360@500", "--width", "320"},
  };
  for (const auto &extra : bad) {
    std::vector<std::string> args = {"serve",    "--certs", certs,
                                     "--source", "test",    "--print-pipeline"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = run_process(cmd(args), 30s, quiet_env());
    std::string what;
    for (const auto &e : extra) what += e + " ";
    EXPECT_EQ(r.status, 2) << what << "\n" << r.transcript;
    EXPECT_NE(r.transcript.find("error: --rendition"), std::string::npos) << what << r.transcript;
    EXPECT_EQ(r.err.size(), 1u) << what << r.transcript;
  }
  RunResult v = run_process(
      cmd({"view", "127.0.0.1:9", "--rendition", "no good", "--print-pipeline"}), 30s, quiet_env());
  EXPECT_EQ(v.status, 2) << v.transcript;
  EXPECT_NE(v.transcript.find("error: --rendition must be auto or a rendition name"),
            std::string::npos)
      << v.transcript;
}

// tlsframe view on a stream the server switches (a raw version 2 server that states the
// rendition in WELCOME, then sends RENDITION with the automatic choice's reason and the
// other rendition's caps): view says the rendition it starts on, prints the switch with its
// reason, and its end line names the rendition it ended on.
TEST_F(RenditionsTest, ViewPrintsItsRenditionAndEachSwitch) {
  const std::vector<uint8_t> big = make_jpeg(64, 48), small = make_jpeg(32, 24);
  ASSERT_FALSE(big.empty());
  ASSERT_FALSE(small.empty());
  std::string certs = make_certs();
  RawV2Server server(certs + "/server.pem", certs + "/server.key");
  ASSERT_TRUE(server.ok()) << server.error();
  std::atomic<bool> stop{false};
  // The viewer connects twice: once for the caps, once to show the stream.
  std::thread peer([&] {
    for (int connection = 0; connection < 2 && !stop; ++connection) {
      RawV2Server::Message m;
      if (!server.accept(Clock::now() + 20s) ||
          server.read_message(m, Clock::now() + 10s) != RawV2Server::ReadStatus::kMessage ||
          m.type != wire::MessageType::kHello) {
        return;
      }
      server.send(wire::encode_welcome({{"stream", ""},
                                        {"server", "raw-v2-test"},
                                        {"rendition", "720p"},
                                        {"renditions", "720p,360p"}}));
      server.send(v2_caps("image/jpeg,width=64,height=48,framerate=10/1"));
      uint64_t seq = 0;
      for (; seq < 3; ++seq) server.send(v2_buffer(seq, true, big));
      if (connection == 1) {
        server.send(wire::encode_rendition("360p", "auto: down, queue delay 640 ms"));
        server.send(v2_caps("image/jpeg,width=32,height=24,framerate=10/1"));
      }
      // Paced by the viewer's reading; ends when it closes (bounded in count).
      for (; seq < 500 && !stop; ++seq) {
        if (!server.send(v2_buffer(seq, true, connection == 1 ? small : big))) break;
      }
      server.close_client();
    }
  });
  RunResult view = run_process(cmd({"view", "127.0.0.1:" + std::to_string(server.port()), "--certs",
                                    certs, "--display", "none", "--frames", "8"}),
                               30s, quiet_env());
  stop = true;
  peer.join();
  EXPECT_EQ(view.status, 0) << view.transcript;
  EXPECT_TRUE(
      has_line(view.out, "protocol 2, stream (default), server raw-v2-test, rendition 720p"))
      << view.transcript;
  EXPECT_TRUE(has_line(view.out, "renditions: 720p, 360p")) << view.transcript;
  EXPECT_TRUE(has_line(view.out, "rendition: 360p (auto: down, queue delay 640 ms)"))
      << view.transcript;
  EXPECT_TRUE(has_line(view.out, "end of stream after 8 frames, rendition 360p"))
      << view.transcript;
}

}  // namespace
}  // namespace tlsframe::test
