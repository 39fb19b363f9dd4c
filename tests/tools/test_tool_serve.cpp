// `tlsframe serve --stream NAME=SOURCE` end to end: several named streams from
// one process on one port, switching a stream between two sources (commands on
// serve's standard input) while two viewers stay connected, and `relay --all`.
// The viewers are tlsframesrc pipelines in this process that decode to RGB and
// classify the picture's centre as red or blue (videotestsrc pattern=red/blue),
// so "the new source is visible" is measured on decoded pixels.
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

using Clock = std::chrono::steady_clock;

enum class Colour { kOther, kRed, kBlue };

const char *colour_name(Colour c) {
  return c == Colour::kRed ? "red" : c == Colour::kBlue ? "blue" : "other";
}

// A viewer of one stream: tlsframesrc -> decodebin -> RGB appsink, in this process.
// Records when the decoded colour changes, the connections tlsframesrc reports and the
// caps events that leave it.
class ColourViewer {
 public:
  ColourViewer(const std::string &uri, const std::string &ca_file)
      : pipeline_(
            "tlsframesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB "
            "! appsink name=out sync=false max-buffers=2 drop=true") {
    if (!pipeline_.ok()) return;
    g_object_set(pipeline_.src(), "uri", uri.c_str(), "ca-file", ca_file.c_str(), nullptr);
    pipeline_.probe(GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, &ColourViewer::on_event, this);
    pipeline_.probe(GST_PAD_PROBE_TYPE_BUFFER, &ColourViewer::on_buffer, this);
    GstAppSinkCallbacks cb{};
    cb.new_sample = &ColourViewer::on_sample;
    gst_app_sink_set_callbacks(GST_APP_SINK(pipeline_.element("out")), &cb, this, nullptr);
    pipeline_.play([this](GstMessage *msg) { on_message(msg); });
  }
  ColourViewer(const ColourViewer &) = delete;
  ColourViewer &operator=(const ColourViewer &) = delete;

  // Waits until `n` frames in a row were `c`; the time the first of them arrived.
  std::optional<Clock::time_point> wait_colour(Colour c, int n, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!(current_ == c && run_ >= n)) {
      if (cond_.wait_until(lock, deadline) == std::cv_status::timeout &&
          !(current_ == c && run_ >= n)) {
        return std::nullopt;
      }
    }
    return since_;
  }
  // Waits until more than `frames` frames arrived in all.
  bool wait_frames_after(uint64_t frames, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cond_.wait_until(lock, deadline, [&] { return frames_ > frames; });
  }
  uint64_t frames() {
    std::lock_guard<std::mutex> lock(mutex_);
    return frames_;
  }
  int connected() {
    std::lock_guard<std::mutex> lock(mutex_);
    return connected_;
  }
  int disconnected() {
    std::lock_guard<std::mutex> lock(mutex_);
    return disconnected_;
  }
  uint64_t keyframes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return keyframes_;
  }
  int caps_events() {
    std::lock_guard<std::mutex> lock(mutex_);
    return caps_events_;
  }
  std::string caps() {
    std::lock_guard<std::mutex> lock(mutex_);
    return caps_;
  }
  std::string errors() {
    std::lock_guard<std::mutex> lock(mutex_);
    return errors_;
  }
  std::string report() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::string("frames ") + std::to_string(frames_) + " (keyframes " +
           std::to_string(keyframes_) + "), now " + colour_name(current_) + " x" +
           std::to_string(run_) + ", connected " + std::to_string(connected_) + ", disconnected " +
           std::to_string(disconnected_) + ", caps events " + std::to_string(caps_events_) +
           ", errors: " + errors_;
  }

 private:
  static Colour classify(const guint8 *rgb) {
    int r = rgb[0], g = rgb[1], b = rgb[2];
    if (r > 180 && g < 80 && b < 80) return Colour::kRed;
    if (b > 180 && r < 80 && g < 80) return Colour::kBlue;
    return Colour::kOther;
  }

  static GstFlowReturn on_sample(GstAppSink *sink, gpointer data) {
    auto *self = static_cast<ColourViewer *>(data);
    GstSample *sample = gst_app_sink_pull_sample(sink);
    if (!sample) return GST_FLOW_OK;
    const GstStructure *s = gst_caps_get_structure(gst_sample_get_caps(sample), 0);
    gint w = 0, h = 0;
    gst_structure_get_int(s, "width", &w);
    gst_structure_get_int(s, "height", &h);
    GstMapInfo map;
    GstBuffer *buf = gst_sample_get_buffer(sample);
    Colour c = Colour::kOther;
    if (w > 0 && h > 0 && gst_buffer_map(buf, &map, GST_MAP_READ)) {
      const gsize stride = (static_cast<gsize>(w) * 3 + 3) & ~gsize{3};  // RGB rows, 4-aligned
      const gsize at = static_cast<gsize>(h / 2) * stride + static_cast<gsize>(w / 2) * 3;
      if (at + 3 <= map.size) c = classify(map.data + at);
      gst_buffer_unmap(buf, &map);
    }
    gst_sample_unref(sample);
    std::lock_guard<std::mutex> lock(self->mutex_);
    ++self->frames_;
    if (c != self->current_) {
      self->current_ = c;
      self->run_ = 0;
      self->since_ = Clock::now();
    }
    ++self->run_;
    self->cond_.notify_all();
    return GST_FLOW_OK;
  }

  static GstPadProbeReturn on_event(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<ColourViewer *>(data);
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
    if (GST_EVENT_TYPE(ev) == GST_EVENT_CAPS) {
      GstCaps *caps;
      gst_event_parse_caps(ev, &caps);
      gchar *text = gst_caps_to_string(caps);
      std::lock_guard<std::mutex> lock(self->mutex_);
      ++self->caps_events_;
      self->caps_ = text;
      g_free(text);
    }
    return GST_PAD_PROBE_OK;
  }

  static GstPadProbeReturn on_buffer(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<ColourViewer *>(data);
    if (!GST_BUFFER_FLAG_IS_SET(GST_PAD_PROBE_INFO_BUFFER(info), GST_BUFFER_FLAG_DELTA_UNIT)) {
      std::lock_guard<std::mutex> lock(self->mutex_);
      ++self->keyframes_;
    }
    return GST_PAD_PROBE_OK;
  }

  void on_message(GstMessage *msg) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      errors_ += error_text(msg) + "; ";
    } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ELEMENT) {
      const GstStructure *s = gst_message_get_structure(msg);
      if (gst_structure_has_name(s, "tlsframesrc-connected")) ++connected_;
      if (gst_structure_has_name(s, "tlsframesrc-disconnected")) ++disconnected_;
    }
    cond_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cond_;
  // Guarded by mutex_:
  uint64_t frames_ = 0;
  uint64_t keyframes_ = 0;  // encoded buffers without DELTA_UNIT leaving tlsframesrc
  Colour current_ = Colour::kOther;
  int run_ = 0;              // frames in a row of current_
  Clock::time_point since_;  // when the first of them arrived
  int connected_ = 0, disconnected_ = 0, caps_events_ = 0;
  std::string caps_, errors_;
  SrcPipeline pipeline_;  // last: stopped before the state its callbacks use goes
};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

class ServeStreamsTest : public ToolTest {
 protected:
  void SetUp() override {
    ToolTest::SetUp();
    gst_init(nullptr, nullptr);
  }
  // Small pictures: the test measures switching, not the encoder.
  static std::vector<std::string> small() {
    return {"--width", "160", "--height", "120", "--fps", "30"};
  }
  std::vector<std::string> serve_args(const std::string &certs,
                                      const std::vector<std::string> &streams,
                                      const std::string &codec = "jpeg") {
    std::vector<std::string> a = {"serve", "--certs", certs, "--port", "0", "--codec", codec};
    for (const auto &s : streams) {
      a.push_back("--stream");
      a.push_back(s);
    }
    for (const auto &s : small()) a.push_back(s);
    return a;
  }
};

// Two streams from one process on one port: each viewer gets only its stream, and serve
// says how to view each.
TEST_F(ServeStreamsTest, TwoNamedStreamsOnOnePortEachViewerGetsItsOwn) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port = start_server(&server, serve_args(certs, {"red=test:red", "blue=test:blue"}));
  ASSERT_NE(port, 0);
  const std::string p = std::to_string(port);
  for (const std::string name : {"red", "blue"}) {
    EXPECT_TRUE(server->wait_line(
        "stream " + name + ": viewers run: tlsframe view [^ ]+:" + p + "/" + name + " --certs ",
        5s))
        << server->transcript();
    EXPECT_TRUE(server->wait_line("stream " + name +
                                      ": with GStreamer: gst-launch-1.0 tlsframesrc "
                                      "uri=tlsframe://[^ ]+:" +
                                      p + "/" + name + " ca-file=",
                                  5s))
        << server->transcript();
  }
  ColourViewer red(uri(port, "red"), certs + "/ca.pem");
  ColourViewer blue(uri(port, "blue"), certs + "/ca.pem");
  auto deadline = Clock::now() + 20s;
  EXPECT_TRUE(red.wait_colour(Colour::kRed, 10, deadline)) << red.report();
  EXPECT_TRUE(blue.wait_colour(Colour::kBlue, 10, deadline)) << blue.report();
  EXPECT_EQ(red.connected(), 1) << red.report();
  EXPECT_EQ(blue.connected(), 1) << blue.report();
  // Both on the one port, and --list names both.
  RunResult list =
      run_process(cmd({"view", "--list", "127.0.0.1:" + p, "--certs", certs}), 30s, quiet_env());
  EXPECT_EQ(list.status, 0) << list.transcript;
  bool red_listed = false, blue_listed = false;
  for (const auto &l : list.out) {
    red_listed |= l.rfind("red ", 0) == 0 && l.find("image/jpeg 160x120") != std::string::npos;
    blue_listed |= l.rfind("blue ", 0) == 0 && l.find("image/jpeg 160x120") != std::string::npos;
  }
  EXPECT_TRUE(red_listed && blue_listed) << list.transcript;
  EXPECT_TRUE(
      server->wait_line("client [0-9]+ connected from 127\\.0\\.0\\.1:[0-9]+ to stream red", 5s))
      << server->transcript();
}

class SwitchTest : public ServeStreamsTest, public ::testing::WithParamInterface<const char *> {};

// One stream, two sources (red, blue); two viewers connected; `switch` on serve's standard
// input: both see the new colour within 1 s, on the same connection, with the same caps.
TEST_P(SwitchTest, SwitchWhileTwoViewersStayConnected) {
  const std::string codec = GetParam();
  std::string certs = make_certs();
  // H.264 with a keyframe every 1000 frames (33 s) on its own: every keyframe after the
  // viewers' joins is one that serve forced at a switch.
  auto args = serve_args(certs, {"cam=test:red", "cam=test:blue"}, codec);
  args.insert(args.end(), {"--gop", "1000"});
  std::unique_ptr<Process> server;
  const int port = start_server(&server, args, quiet_env(), Process::Stdin::kPipe);
  ASSERT_NE(port, 0);
  ASSERT_TRUE(server->wait_line("commands on standard input: switch", 5s)) << server->transcript();
  ASSERT_TRUE(server->wait_line("stream cam: source \\[0\\] test:red: .* \\(active\\)", 1s))
      << server->transcript();

  ColourViewer a(uri(port, "cam"), certs + "/ca.pem");
  ColourViewer b(uri(port, "cam"), certs + "/ca.pem");
  auto deadline = Clock::now() + 20s;
  ASSERT_TRUE(a.wait_colour(Colour::kRed, 10, deadline)) << a.report();
  ASSERT_TRUE(b.wait_colour(Colour::kRed, 10, deadline)) << b.report();
  const std::string caps = a.caps();
  ASSERT_FALSE(caps.empty());
  EXPECT_EQ(b.caps(), caps);

  struct Step {
    std::string command;
    Colour colour;
    std::string answer;
  };
  // By stream and index, then by the source as given with the stream left out.
  const std::vector<Step> steps = {
      {"switch cam 1", Colour::kBlue, "stream cam: switched to \\[1\\] test:blue"},
      {"switch test:red", Colour::kRed, "stream cam: switched to \\[0\\] test:red"},
  };
  for (const auto &step : steps) {
    const uint64_t keys_a = a.keyframes(), keys_b = b.keyframes();
    const auto sent = Clock::now();
    ASSERT_TRUE(server->write_stdin(step.command + "\n"));
    auto seen_a = a.wait_colour(step.colour, 3, sent + 5s);
    auto seen_b = b.wait_colour(step.colour, 3, sent + 5s);
    ASSERT_TRUE(seen_a) << step.command << ": " << a.report() << "\n" << server->transcript();
    ASSERT_TRUE(seen_b) << step.command << ": " << b.report() << "\n" << server->transcript();
    const double ms_a = ms_between(sent, *seen_a), ms_b = ms_between(sent, *seen_b);
    std::printf("%s (%s): %s seen after %.0f ms and %.0f ms\n", step.command.c_str(), codec.c_str(),
                colour_name(step.colour), ms_a, ms_b);
    EXPECT_LT(ms_a, 1000) << step.command;
    EXPECT_LT(ms_b, 1000) << step.command;
    EXPECT_TRUE(server->wait_line(step.answer, 5s)) << server->transcript();
    // The new source starts on a keyframe (every JPEG frame is one; H.264: the forced one).
    EXPECT_GT(a.keyframes(), keys_a) << step.command << ": " << a.report();
    EXPECT_GT(b.keyframes(), keys_b) << step.command << ": " << b.report();
  }
  // Same connections, same caps (not even a repeated caps event), nobody left.
  for (ColourViewer *v : {&a, &b}) {
    EXPECT_EQ(v->connected(), 1) << v->report();
    EXPECT_EQ(v->disconnected(), 0) << v->report();
    EXPECT_EQ(v->caps_events(), 1) << v->report();
    EXPECT_EQ(v->caps(), caps) << v->report();
    EXPECT_EQ(v->errors(), "") << v->report();
  }
  for (const auto &l : server->out_lines()) {
    EXPECT_EQ(l.find(" left"), std::string::npos) << server->transcript();
  }

  // A bad command is an error line; end of input stops the commands, not the server.
  ASSERT_TRUE(server->write_stdin("switch cam 7\n"));
  EXPECT_TRUE(server->wait_line("error: stream cam has no source '7'", 5s)) << server->transcript();
  server->close_stdin();
  const uint64_t frames = a.frames();
  EXPECT_TRUE(a.wait_frames_after(frames + 30, Clock::now() + 10s)) << a.report();
  EXPECT_EQ(a.disconnected(), 0) << a.report();
  server->signal(SIGINT);
  EXPECT_EQ(server->wait_exit(20s), std::optional<int>(0)) << server->transcript();
}

INSTANTIATE_TEST_SUITE_P(Codecs, SwitchTest, ::testing::Values("jpeg", "h264"));

// relay --all of a two-stream server: a viewer of each stream through the relay gets its own.
TEST_F(ServeStreamsTest, RelayAllRelaysEveryStreamOnOnePort) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server, relay;
  int port = start_server(&server, serve_args(certs, {"red=test:red", "blue=test:blue"}));
  ASSERT_NE(port, 0);
  int relay_port = start_server(&relay, {"relay", "--from", "127.0.0.1:" + std::to_string(port),
                                         "--all", "--port", "0", "--certs", certs});
  ASSERT_NE(relay_port, 0);
  EXPECT_TRUE(relay->wait_line("relaying 2 streams of 127\\.0\\.0\\.1:" + std::to_string(port) +
                                   " \\(upstream: (red, blue|blue, red)\\)",
                               1s))
      << relay->transcript();
  ColourViewer red(uri(relay_port, "red"), certs + "/ca.pem");
  ColourViewer blue(uri(relay_port, "blue"), certs + "/ca.pem");
  auto deadline = Clock::now() + 20s;
  EXPECT_TRUE(red.wait_colour(Colour::kRed, 10, deadline)) << red.report();
  EXPECT_TRUE(blue.wait_colour(Colour::kBlue, 10, deadline)) << blue.report();
  EXPECT_TRUE(relay->wait_line("upstream connected: .* \\(stream red\\)", 5s))
      << relay->transcript();
  EXPECT_TRUE(relay->wait_line("upstream connected: .* \\(stream blue\\)", 5s))
      << relay->transcript();
}

// Command-line errors: usage errors (status 2) before anything starts.
TEST_F(ServeStreamsTest, StreamOptionErrors) {
  std::string certs = make_certs();
  RunResult both = run_process(cmd({"serve", "--certs", certs, "--source", "test", "--stream",
                                    "a=test", "--print-pipeline"}),
                               30s, quiet_env());
  EXPECT_EQ(both.status, 2) << both.transcript;
  EXPECT_NE(both.transcript.find("--source and --stream"), std::string::npos) << both.transcript;
  RunResult no_eq = run_process(
      cmd({"serve", "--certs", certs, "--stream", "cam", "--print-pipeline"}), 30s, quiet_env());
  EXPECT_EQ(no_eq.status, 2) << no_eq.transcript;
  EXPECT_NE(no_eq.transcript.find("NAME=SOURCE"), std::string::npos) << no_eq.transcript;
  RunResult relay_name = run_process(
      cmd({"relay", "--from", "127.0.0.1:7000/cam", "--all", "--certs", certs}), 30s, quiet_env());
  EXPECT_EQ(relay_name.status, 2) << relay_name.transcript;
  // The printed pipeline names no stream in its structure: stream names are properties.
  RunResult print = run_process(cmd({"serve", "--certs", certs, "--stream", "cam.1=test:red",
                                     "--stream", "cam.1=test:blue", "--print-pipeline"}),
                                30s, quiet_env());
  ASSERT_EQ(print.status, 0) << print.transcript;
  ASSERT_EQ(print.out.size(), 1u) << print.transcript;
  EXPECT_NE(print.out[0].find("input-selector name=select-0"), std::string::npos);
  EXPECT_NE(print.out[0].find("tlsframesink name=sink-0 host=0.0.0.0 stream-name=cam.1"),
            std::string::npos)
      << print.out[0];
  EXPECT_NE(print.out[0].find("! select-0.sink_1"), std::string::npos) << print.out[0];
}

}  // namespace
}  // namespace tlsframe::test
