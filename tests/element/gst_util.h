// Helpers for element tests: real pipelines with the plugin from the build
// tree, waits on conditions with deadlines (never sleeps), bus inspection.
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace tlsframe::test {

// gst_init once and check that the tlsframe plugin loads (ASSERT in tests).
void init_gstreamer();

// A condition variable that signal handlers and probes poke; wait_for()
// re-checks a predicate on every poke until it holds or the timeout passes.
class Waiter {
 public:
  void notify();
  bool wait_for(const std::function<bool()> &pred, std::chrono::milliseconds timeout);

 private:
  std::mutex mutex_;
  std::condition_variable cond_;
};

// Owns a pipeline made with gst_parse_launch; sets it to NULL on destruction.
class Pipeline {
 public:
  explicit Pipeline(const std::string &description);  // ADD_FAILURE on parse error
  ~Pipeline();
  Pipeline(const Pipeline &) = delete;
  Pipeline &operator=(const Pipeline &) = delete;

  GstElement *get() const { return pipeline_; }
  GstElement *element(const char *name) const;  // borrowed; ADD_FAILURE if missing
  bool ok() const { return pipeline_ != nullptr; }

  // Sets the state; waits (bounded) for async changes. Returns the result.
  // A live client pipeline (tlsframesrc ! appsink) stays ASYNC until data
  // arrives: start those with gst_element_set_state() instead.
  GstStateChangeReturn set_state(GstState state,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Pops bus messages until one of `types` arrives (returned, caller unrefs) or timeout (nullptr).
  GstMessage *wait_message(GstMessageType types, std::chrono::milliseconds timeout);
  // Error text of the first ERROR message within timeout ("" if none).
  std::string wait_error(std::chrono::milliseconds timeout);
  // Text of the next WARNING message within timeout ("" if none).
  std::string wait_warning(std::chrono::milliseconds timeout);
  // Every WARNING/ERROR text seen by wait_message so far.
  const std::vector<std::string> &problems() const { return problems_; }

 private:
  GstElement *pipeline_ = nullptr;
  std::vector<std::string> problems_;
};

// Text of every ERROR already queued on p's bus ("" when none); does not wait.
std::string pending_errors(Pipeline &p);

// A port free now on 127.0.0.1 (bound to port 0, read, closed; 0 on failure): sinks
// that share a port need a fixed one.
int free_port();

// current-port of a tlsframesink (valid from PAUSED).
int current_port(GstElement *sink);
// One client-removed emission, as the sink reported it.
struct RemovedClient {
  guint64 id;
  std::string address;
  int status;  // GstTlsFrameClientStatus
  std::string error;
};

// Records client-removed emissions (the sink emits them from its signal
// thread): g_signal_connect(sink, "client-removed",
// G_CALLBACK(RemovedRecorder::on_removed), &recorder). waiter is poked on each.
struct RemovedRecorder {
  std::mutex mutex;  // protects removed
  std::vector<RemovedClient> removed;
  Waiter waiter;

  static void on_removed(GstElement *, guint64 id, const gchar *address, gint status,
                         const gchar *error, gpointer data);
  std::vector<RemovedClient> snapshot();
  size_t count();
  size_t count_status(int status);
};

guint num_clients(GstElement *sink);
// Waits until the sink's num-clients satisfies pred (uses notify::num-clients).
bool wait_num_clients(GstElement *sink, const std::function<bool(guint)> &pred,
                      std::chrono::milliseconds timeout);
// A uint64 field of the sink's "stats" structure.
guint64 sink_stat(GstElement *sink, const char *field);

// Pulls from client's appsink "out" until n buffers published by the sink at
// or after this call arrived (buffer offset = the server's sequence number),
// so samples queued earlier do not count. max_size: largest such buffer.
::testing::AssertionResult receives_fresh(Pipeline &client, GstElement *sink, size_t n,
                                          std::chrono::milliseconds timeout,
                                          size_t *max_size = nullptr);

// Pulls samples from an appsink until EOS, count, or timeout. Caller unrefs.
std::vector<GstSample *> pull_samples(GstElement *appsink, size_t max_count,
                                      std::chrono::milliseconds timeout);
void unref_samples(std::vector<GstSample *> &samples);

// What play_uri() saw: frames that reached playbin's video sink, the state it
// reached, and the text of every error on its bus.
struct PlaybinResult {
  int frames = 0;
  GstState state = GST_STATE_NULL;
  std::string errors;
};

// Plays uri in a playbin (fakesink video and audio sinks, sync on) whose
// tlsframesrc gets ca-file ca from "source-setup", as an application would set
// the trust a URI cannot carry. Waits until min_frames frames reached the video
// sink or timeout passed, calls while_playing (if any) with playbin still
// playing, then stops it.
PlaybinResult play_uri(const std::string &uri, const std::string &ca, int min_frames,
                       std::chrono::milliseconds timeout,
                       const std::function<void()> &while_playing = {});

// File descriptors and threads of this process, for leak checks.
size_t open_fd_count();
size_t thread_count();

}  // namespace tlsframe::test
