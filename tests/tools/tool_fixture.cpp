#include "tools/tool_fixture.h"

#include <gst/app/gstappsink.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace tlsframe::test {

std::map<std::string, std::string> quiet_env() {
  // An empty value unsets: no GStreamer debug output, no display.
  return {{"GST_DEBUG", ""}, {"DISPLAY", ""}, {"WAYLAND_DISPLAY", ""}};
}

void ToolTest::SetUp() {
  gchar *d = g_dir_make_tmp("tlsframe-tool-XXXXXX", nullptr);
  ASSERT_NE(d, nullptr);
  dir_ = d;
  g_free(d);
}

void ToolTest::TearDown() {
  if (dir_.empty()) return;
  // Bounded recursive removal of our own temporary directory.
  run_process({"/bin/rm", "-rf", dir_}, 10s);
}

std::vector<std::string> ToolTest::cmd(const std::vector<std::string> &args) const {
  std::vector<std::string> v = {tool()};
  v.insert(v.end(), args.begin(), args.end());
  return v;
}

std::string ToolTest::make_certs(const std::string &name, const std::vector<std::string> &hosts) {
  std::string out = dir_ + "/" + name;
  std::vector<std::string> args = {"certs", "--out", out, "--client", "alice"};
  for (const auto &h : hosts) {
    args.push_back("--host");
    args.push_back(h);
  }
  RunResult r = run_process(cmd(args), 30s, quiet_env());
  EXPECT_EQ(r.status, 0) << r.transcript;
  return out;
}

int ToolTest::start_server(std::unique_ptr<Process> *proc, const std::vector<std::string> &args) {
  return start_server(proc, args, {}, Process::Stdin::kNull);
}

int ToolTest::start_server(std::unique_ptr<Process> *proc, const std::vector<std::string> &args,
                           const std::map<std::string, std::string> &env, Process::Stdin in) {
  *proc = std::make_unique<Process>(cmd(args), env, in);
  auto line = (*proc)->wait_line("listening on port [0-9]+", 20s);
  if (!line) {
    ADD_FAILURE() << "no 'listening on port' line from " << args[0] << ":\n"
                  << (*proc)->transcript();
    return 0;
  }
  return std::atoi(match_group(*line, "listening on port ([0-9]+)").c_str());
}

std::string uri(int port, const std::string &name) {
  return "tlsframe://127.0.0.1:" + std::to_string(port) + (name.empty() ? "" : "/" + name);
}

double discovered_duration(const std::string &path, std::string *output) {
  RunResult r = run_process({"/usr/bin/gst-discoverer-1.0", path}, 30s);
  if (output) *output = r.transcript;
  for (const auto &line : r.out) {
    std::string h = match_group(line, "Duration: ([0-9]+):([0-9]+):([0-9.]+)", 1);
    if (h.empty()) continue;
    std::string m = match_group(line, "Duration: ([0-9]+):([0-9]+):([0-9.]+)", 2);
    std::string s = match_group(line, "Duration: ([0-9]+):([0-9]+):([0-9.]+)", 3);
    return std::atof(h.c_str()) * 3600 + std::atof(m.c_str()) * 60 + std::atof(s.c_str());
  }
  return -1;
}

bool has_line(const std::vector<std::string> &lines, const std::string &needle) {
  for (const auto &l : lines) {
    if (l.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string read_text(const std::string &path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int mode_of(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
}

std::vector<uint8_t> make_jpeg(int w, int h) {
  gst_init(nullptr, nullptr);
  std::string launch = "videotestsrc num-buffers=1 ! video/x-raw,width=" + std::to_string(w) +
                       ",height=" + std::to_string(h) + " ! jpegenc ! appsink name=out";
  GstElement *p = gst_parse_launch(launch.c_str(), nullptr);
  if (!p) return {};
  GstElement *out = gst_bin_get_by_name(GST_BIN(p), "out");
  gst_element_set_state(p, GST_STATE_PLAYING);
  std::vector<uint8_t> bytes;
  if (GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(out), 10 * GST_SECOND)) {
    GstMapInfo map;
    GstBuffer *b = gst_sample_get_buffer(s);
    if (gst_buffer_map(b, &map, GST_MAP_READ)) {
      bytes.assign(map.data, map.data + map.size);
      gst_buffer_unmap(b, &map);
    }
    gst_sample_unref(s);
  }
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(out);
  gst_object_unref(p);
  return bytes;
}

std::string error_text(GstMessage *msg) {
  GError *err = nullptr;
  gst_message_parse_error(msg, &err, nullptr);
  std::string text = err ? err->message : "?";
  g_clear_error(&err);
  return text;
}

SrcPipeline::SrcPipeline(const std::string &launch) {
  GError *err = nullptr;
  pipeline_ = gst_parse_launch(launch.c_str(), &err);
  if (err) {
    ADD_FAILURE() << "gst_parse_launch(" << launch << "): " << err->message;
    g_clear_error(&err);
  }
  if (pipeline_) src_ = gst_bin_get_by_name(GST_BIN(pipeline_), "src");
}

SrcPipeline::~SrcPipeline() {
  if (!pipeline_) return;
  gst_element_set_state(pipeline_, GST_STATE_NULL);
  GstBus *bus = gst_element_get_bus(pipeline_);
  gst_bus_set_sync_handler(bus, nullptr, nullptr, nullptr);
  gst_object_unref(bus);
  if (src_) gst_object_unref(src_);
  gst_object_unref(pipeline_);
}

GstElement *SrcPipeline::element(const char *name) const {
  if (!pipeline_) return nullptr;
  GstElement *e = gst_bin_get_by_name(GST_BIN(pipeline_), name);
  if (e) gst_object_unref(e);  // the bin keeps its own reference
  return e;
}

void SrcPipeline::probe(GstPadProbeType type, GstPadProbeCallback callback, gpointer data) {
  if (!src_) return;
  GstPad *pad = gst_element_get_static_pad(src_, "src");
  gst_pad_add_probe(pad, type, callback, data, nullptr);
  gst_object_unref(pad);
}

void SrcPipeline::play(std::function<void(GstMessage *)> on_message) {
  if (!pipeline_) return;
  on_message_ = std::move(on_message);
  GstBus *bus = gst_element_get_bus(pipeline_);
  gst_bus_set_sync_handler(bus, &SrcPipeline::on_bus, this, nullptr);
  gst_object_unref(bus);
  gst_element_set_state(pipeline_, GST_STATE_PLAYING);
}

GstBusSyncReply SrcPipeline::on_bus(GstBus *, GstMessage *msg, gpointer data) {
  auto *self = static_cast<SrcPipeline *>(data);
  if (self->on_message_) self->on_message_(msg);
  return GST_BUS_DROP;
}

}  // namespace tlsframe::test
