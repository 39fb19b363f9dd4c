#include "element/gst_util.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

namespace tlsframe::test {

void init_gstreamer() {
  static bool done = false;
  if (!done) {
    gst_init(nullptr, nullptr);
    done = true;
  }
  GstElementFactory *f = gst_element_factory_find("tlsframesink");
  ASSERT_NE(f, nullptr) << "tlsframe plugin not found; GST_PLUGIN_PATH="
                        << (g_getenv("GST_PLUGIN_PATH") ? g_getenv("GST_PLUGIN_PATH") : "");
  gst_object_unref(f);
}

void Waiter::notify() {
  // Under the lock: a waiter that returns and is destroyed cannot be touched afterwards.
  std::lock_guard<std::mutex> lock(mutex_);
  cond_.notify_all();
}

bool Waiter::wait_for(const std::function<bool()> &pred, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // pred is re-checked on every notify, and at least every 50 ms in case a
  // notifier raced the check (notify holds the mutex, so none is lost).
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    cond_.wait_until(
        lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
  }
  return true;
}

Pipeline::Pipeline(const std::string &description) {
  GError *error = nullptr;
  pipeline_ = gst_parse_launch(description.c_str(), &error);
  if (error) {
    ADD_FAILURE() << "cannot parse pipeline '" << description << "': " << error->message;
    g_clear_error(&error);
    if (pipeline_) gst_object_unref(pipeline_);
    pipeline_ = nullptr;
  }
}

Pipeline::~Pipeline() {
  if (!pipeline_) return;
  gst_element_set_state(pipeline_, GST_STATE_NULL);
  gst_object_unref(pipeline_);
}

GstElement *Pipeline::element(const char *name) const {
  if (!pipeline_) return nullptr;
  GstElement *e = gst_bin_get_by_name(GST_BIN(pipeline_), name);
  if (!e) {
    ADD_FAILURE() << "no element named " << name;
    return nullptr;
  }
  gst_object_unref(e);  // the bin keeps it alive
  return e;
}

GstStateChangeReturn Pipeline::set_state(GstState state, std::chrono::milliseconds timeout) {
  GstStateChangeReturn r = gst_element_set_state(pipeline_, state);
  if (r == GST_STATE_CHANGE_ASYNC) {
    r = gst_element_get_state(
        pipeline_, nullptr, nullptr,
        std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count());
  }
  return r;
}

GstMessage *Pipeline::wait_message(GstMessageType types, std::chrono::milliseconds timeout) {
  GstBus *bus = gst_element_get_bus(pipeline_);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  GstMessage *found = nullptr;
  while (!found) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    GstMessage *msg = gst_bus_timed_pop_filtered(
        bus, left.count(),
        static_cast<GstMessageType>(types | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING));
    if (!msg) break;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR ||
        GST_MESSAGE_TYPE(msg) == GST_MESSAGE_WARNING) {
      GError *err = nullptr;
      gchar *dbg = nullptr;
      if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
        gst_message_parse_error(msg, &err, &dbg);
      } else {
        gst_message_parse_warning(msg, &err, &dbg);
      }
      problems_.push_back(std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))) + ": " + err->message +
                          " (" + (dbg ? dbg : "") + ")");
      g_clear_error(&err);
      g_free(dbg);
    }
    if (GST_MESSAGE_TYPE(msg) & types) {
      found = msg;
    } else {
      gst_message_unref(msg);
    }
  }
  gst_object_unref(bus);
  return found;
}

std::string Pipeline::wait_error(std::chrono::milliseconds timeout) {
  GstMessage *msg = wait_message(GST_MESSAGE_ERROR, timeout);
  if (!msg) return "";
  GError *err = nullptr;
  gst_message_parse_error(msg, &err, nullptr);
  std::string text = err ? err->message : "";
  g_clear_error(&err);
  gst_message_unref(msg);
  return text;
}

std::string Pipeline::wait_warning(std::chrono::milliseconds timeout) {
  GstMessage *msg = wait_message(GST_MESSAGE_WARNING, timeout);
  if (!msg) return "";
  GError *err = nullptr;
  gst_message_parse_warning(msg, &err, nullptr);
  std::string text = err ? err->message : "";
  g_clear_error(&err);
  gst_message_unref(msg);
  return text;
}

std::string pending_errors(Pipeline &p) {
  std::string out;
  GstBus *bus = gst_element_get_bus(p.get());
  while (GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
    GError *err = nullptr;
    gchar *dbg = nullptr;
    gst_message_parse_error(msg, &err, &dbg);
    out += std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))) + ": " + (err ? err->message : "") +
           " (" + (dbg ? dbg : "") + "); ";
    g_clear_error(&err);
    g_free(dbg);
    gst_message_unref(msg);
  }
  gst_object_unref(bus);
  return out;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

int current_port(GstElement *sink) {
  int port = 0;
  g_object_get(sink, "current-port", &port, nullptr);
  return port;
}

guint num_clients(GstElement *sink) {
  guint n = 0;
  g_object_get(sink, "num-clients", &n, nullptr);
  return n;
}

static void on_notify(GObject *, GParamSpec *, gpointer data) {
  static_cast<Waiter *>(data)->notify();
}

bool wait_num_clients(GstElement *sink, const std::function<bool(guint)> &pred,
                      std::chrono::milliseconds timeout) {
  // notify::num-clients comes from the server's I/O threads, and disconnecting
  // does not wait for a handler already running there: the Waiter lives on the
  // heap and is freed by the closure's destroy notify, after its last call.
  auto *waiter = new Waiter();
  gulong id = g_signal_connect_data(
      sink, "notify::num-clients", G_CALLBACK(on_notify), waiter,
      [](gpointer data, GClosure *) { delete static_cast<Waiter *>(data); },
      static_cast<GConnectFlags>(0));
  bool ok = waiter->wait_for([&] { return pred(num_clients(sink)); }, timeout);
  g_signal_handler_disconnect(sink, id);
  return ok;
}

void RemovedRecorder::on_removed(GstElement *, guint64 id, const gchar *address, gint status,
                                 const gchar *error, gpointer data) {
  auto *self = static_cast<RemovedRecorder *>(data);
  {
    std::lock_guard<std::mutex> lock(self->mutex);
    self->removed.push_back({id, address ? address : "", status, error ? error : ""});
  }
  self->waiter.notify();
}

std::vector<RemovedClient> RemovedRecorder::snapshot() {
  std::lock_guard<std::mutex> lock(mutex);
  return removed;
}

size_t RemovedRecorder::count() {
  std::lock_guard<std::mutex> lock(mutex);
  return removed.size();
}

size_t RemovedRecorder::count_status(int status) {
  std::lock_guard<std::mutex> lock(mutex);
  return static_cast<size_t>(std::count_if(
      removed.begin(), removed.end(), [&](const RemovedClient &r) { return r.status == status; }));
}

guint64 sink_stat(GstElement *sink, const char *field) {
  GstStructure *s = nullptr;
  g_object_get(sink, "stats", &s, nullptr);
  guint64 v = 0;
  if (s) {
    gst_structure_get_uint64(s, field, &v);
    gst_structure_free(s);
  }
  return v;
}

::testing::AssertionResult receives_fresh(Pipeline &client, GstElement *sink, size_t n,
                                          std::chrono::milliseconds timeout, size_t *max_size) {
  guint64 from = sink_stat(sink, "buffers-published");
  GstElement *out = client.element("out");
  if (!out) return ::testing::AssertionFailure() << "no appsink";
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t fresh = 0, pulled = 0;
  while (fresh < n && pulled < 1000) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    auto samples = pull_samples(out, 1, left);
    if (samples.empty()) break;
    pulled++;
    GstBuffer *buf = gst_sample_get_buffer(samples[0]);
    if (buf && GST_BUFFER_OFFSET(buf) >= from) {
      fresh++;
      if (max_size) *max_size = std::max(*max_size, gst_buffer_get_size(buf));
    }
    unref_samples(samples);
  }
  if (fresh >= n) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "client got " << fresh << " of " << n << " fresh buffers (pulled " << pulled
         << ", published from #" << from
         << "); client problems: " << (client.problems().empty() ? "" : client.problems().front())
         << " " << pending_errors(client);
}

std::vector<GstSample *> pull_samples(GstElement *appsink, size_t max_count,
                                      std::chrono::milliseconds timeout) {
  std::vector<GstSample *> out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < max_count) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(appsink), left.count());
    if (!s) break;  // EOS or timeout
    out.push_back(s);
  }
  return out;
}

void unref_samples(std::vector<GstSample *> &samples) {
  for (GstSample *s : samples) gst_sample_unref(s);
  samples.clear();
}

namespace {
struct PlaybinProbe {
  std::string ca;
  std::atomic<int> frames{0};
  Waiter waiter;
};
}  // namespace

PlaybinResult play_uri(const std::string &uri, const std::string &ca, int min_frames,
                       std::chrono::milliseconds timeout,
                       const std::function<void()> &while_playing) {
  PlaybinResult result;
  GstElement *playbin = gst_element_factory_make("playbin", nullptr);
  GstElement *vsink = gst_element_factory_make("fakesink", "vsink");
  GstElement *asink = gst_element_factory_make("fakesink", "asink");
  if (!playbin || !vsink || !asink) {
    result.errors = "playbin or fakesink is missing";
    if (playbin) gst_object_unref(playbin);
    if (vsink) gst_object_unref(vsink);
    if (asink) gst_object_unref(asink);
    return result;
  }
  PlaybinProbe probe;
  probe.ca = ca;
  g_object_set(vsink, "sync", TRUE, "signal-handoffs", TRUE, nullptr);
  g_signal_connect(vsink, "handoff",
                   G_CALLBACK(+[](GstElement *, GstBuffer *, GstPad *, gpointer d) {
                     auto *p = static_cast<PlaybinProbe *>(d);
                     p->frames++;
                     p->waiter.notify();
                   }),
                   &probe);
  g_object_set(playbin, "uri", uri.c_str(), "video-sink", vsink, "audio-sink", asink, nullptr);
  g_signal_connect(
      playbin, "source-setup", G_CALLBACK(+[](GstElement *, GstElement *src, gpointer d) {
        g_object_set(src, "ca-file", static_cast<PlaybinProbe *>(d)->ca.c_str(), nullptr);
      }),
      &probe);
  if (gst_element_set_state(playbin, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE) {
    probe.waiter.wait_for([&] { return probe.frames.load() >= min_frames; }, timeout);
    gst_element_get_state(playbin, &result.state, nullptr, 5 * GST_SECOND);
  }
  result.frames = probe.frames.load();
  GstBus *bus = gst_element_get_bus(playbin);
  while (GstMessage *m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
    GError *err = nullptr;
    gst_message_parse_error(m, &err, nullptr);
    result.errors += std::string(err ? err->message : "?") + "; ";
    g_clear_error(&err);
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  if (while_playing) while_playing();
  gst_element_set_state(playbin, GST_STATE_NULL);
  gst_object_unref(playbin);
  return result;
}

static size_t count_dir(const char *path) {
  size_t n = 0;
  if (DIR *d = opendir(path)) {
    while (struct dirent *e = readdir(d)) {
      if (e->d_name[0] != '.') n++;
    }
    closedir(d);
  }
  return n;
}

size_t open_fd_count() {
  return count_dir("/proc/self/fd");
}
size_t thread_count() {
  return count_dir("/proc/self/task");
}

}  // namespace tlsframe::test
