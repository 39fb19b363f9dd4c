// Lifecycle of tlsframesink / tlsframesrc over real loopback TLS: EOS from the
// server reaches every client (and ends gst-launch-1.0 with exit code 0),
// repeated state changes leak no sockets or threads, a src stuck in a
// handshake unlocks promptly, and pausing the sink keeps its clients.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/pki.h"
#include "element/gst_util.h"

namespace tlsframe::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = std::chrono::milliseconds(5000);  // generous bound for any one condition
constexpr int kClientStatusEos = 5;                      // GstTlsFrameClientStatus "eos"

// Holds the buffers of a pad until release(): lets clients connect before a
// server produces its first frame.
class PadBlock {
 public:
  explicit PadBlock(GstElement *element) : pad_(gst_element_get_static_pad(element, "src")) {
    id_ = gst_pad_add_probe(
        pad_, GST_PAD_PROBE_TYPE_BLOCK_DOWNSTREAM,
        [](GstPad *, GstPadProbeInfo *, gpointer) { return GST_PAD_PROBE_OK; }, nullptr, nullptr);
  }
  ~PadBlock() {
    release();
    gst_object_unref(pad_);
  }
  void release() {
    if (id_) gst_pad_remove_probe(pad_, id_);
    id_ = 0;
  }

 private:
  GstPad *pad_;
  gulong id_ = 0;
};

// A listening TCP socket on 127.0.0.1 that never speaks.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
  }
  ~SilentServer() {
    if (conn_ >= 0) ::close(conn_);
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }
  int connection() const { return conn_; }

  // Accepts one connection within the timeout.
  bool accept_one(std::chrono::milliseconds timeout) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) return false;
    conn_ = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    return conn_ >= 0;
  }
  // Waits for readable data (or EOF) on the accepted connection; returns bytes read, 0 on EOF, -1
  // on timeout.
  ssize_t read_some(std::chrono::milliseconds timeout) {
    pollfd pfd{conn_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) return -1;
    char buf[4096];
    ssize_t n = ::recv(conn_, buf, sizeof buf, 0);
    return n < 0 ? 0 : n;  // a reset counts as closed
  }

 private:
  int fd_ = -1, conn_ = -1, port_ = 0;
};

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override { init_gstreamer(); }

  std::string server_desc(const std::string &src_extra = "", const std::string &sink_extra = "") {
    return "videotestsrc name=vsrc is-live=true pattern=ball " + src_extra +
           " ! video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc ! "
           "tlsframesink name=sink port=0 host=127.0.0.1 cert-file=\"" +
           pki.server_cert() + "\" key-file=\"" + pki.server_key() + "\" " + sink_extra;
  }
  std::string client_desc(int port, const std::string &sink_extra = "sync=false") {
    return "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) + " ca-file=\"" +
           pki.ca() + "\" ! appsink name=out " + sink_extra;
  }

  Pki pki;
};

TEST_F(LifecycleTest, ServerEosReachesEveryClientAfterAllBuffers) {
  constexpr int kClients = 4;
  constexpr size_t kBuffers = 60;
  RemovedRecorder removed;
  // buffers-max above kBuffers: a client's queue never overflows, so each gets all of them.
  Pipeline server(server_desc("num-buffers=60", "buffers-max=128"));
  ASSERT_TRUE(server.ok());
  GstElement *sink = server.element("sink");
  g_signal_connect(sink, "client-removed", G_CALLBACK(RemovedRecorder::on_removed), &removed);
  PadBlock block(server.element("vsrc"));
  // Not Pipeline::set_state: that would wait for a first buffer, which is held back.
  ASSERT_NE(gst_element_set_state(server.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  int port = current_port(sink);
  ASSERT_GT(port, 0);

  std::vector<std::unique_ptr<Pipeline>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Pipeline>(client_desc(port)));
    ASSERT_TRUE(clients.back()->ok());
    ASSERT_NE(gst_element_set_state(clients.back()->get(), GST_STATE_PLAYING),
              GST_STATE_CHANGE_FAILURE);
  }
  ASSERT_TRUE(wait_num_clients(
      sink, [](guint n) { return n == kClients; }, kWait))
      << "num-clients=" << num_clients(sink);
  block.release();  // now the 60 frames flow (30 fps: about 2 s)

  for (int i = 0; i < kClients; ++i) {
    auto samples = pull_samples(clients[i]->element("out"), kBuffers + 1, 10s);
    EXPECT_EQ(samples.size(), kBuffers) << "client " << i;
    unref_samples(samples);
    EXPECT_TRUE(gst_app_sink_is_eos(GST_APP_SINK(clients[i]->element("out")))) << "client " << i;
    GstMessage *eos = clients[i]->wait_message(GST_MESSAGE_EOS, kWait);
    EXPECT_NE(eos, nullptr) << "client " << i
                            << " posted no EOS; errors: " << pending_errors(*clients[i]);
    if (eos) gst_message_unref(eos);
  }
  // The sink posts EOS only after every client got it.
  GstMessage *eos = server.wait_message(GST_MESSAGE_EOS, kWait);
  EXPECT_NE(eos, nullptr);
  if (eos) gst_message_unref(eos);
  EXPECT_TRUE(removed.waiter.wait_for([&] { return removed.count() == kClients; }, kWait));
  EXPECT_EQ(removed.count_status(kClientStatusEos), static_cast<size_t>(kClients));
  EXPECT_EQ(pending_errors(server), "");
}

// Runs `timeout 20 gst-launch-1.0 <args>` on another thread (inherits the
// environment, GST_PLUGIN_PATH included); join() returns its wait status.
class GstLaunch {
 public:
  explicit GstLaunch(const std::string &pipeline) {
    thread_ = std::thread([this, pipeline] {
      std::string cmd = "timeout 20 gst-launch-1.0 " + pipeline;
      GError *err = nullptr;
      gchar *out = nullptr, *errout = nullptr;
      if (!g_spawn_command_line_sync(cmd.c_str(), &out, &errout, &status_, &err)) {
        spawn_error_ = err ? err->message : "spawn failed";
        g_clear_error(&err);
      }
      output_ = std::string(out ? out : "") + std::string(errout ? errout : "");
      g_free(out);
      g_free(errout);
    });
  }
  ~GstLaunch() { join(); }
  int join() {
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  const std::string &output() const { return output_; }
  const std::string &spawn_error() const { return spawn_error_; }

 private:
  std::thread thread_;
  int status_ = -1;
  std::string output_, spawn_error_;
};

size_t count_occurrences(const std::string &text, const std::string &needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    n++;
  return n;
}

TEST_F(LifecycleTest, GstLaunchClientExitsZeroAfterServerEos) {
  Pipeline server(server_desc("num-buffers=30"));
  ASSERT_TRUE(server.ok());
  GstElement *sink = server.element("sink");
  PadBlock block(server.element("vsrc"));
  ASSERT_NE(gst_element_set_state(server.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  int port = current_port(sink);
  ASSERT_GT(port, 0);

  // fakesink silent=false with -v prints one "chain" line per buffer.
  GstLaunch launch("-v tlsframesrc host=127.0.0.1 port=" + std::to_string(port) + " ca-file=\"" +
                   pki.ca() + "\" ! fakesink silent=false sync=false");
  bool connected = wait_num_clients(
      sink, [](guint n) { return n == 1; }, 10s);
  block.release();
  int status = launch.join();
  ASSERT_TRUE(connected) << launch.output();
  ASSERT_EQ(launch.spawn_error(), "");
  ASSERT_TRUE(WIFEXITED(status)) << launch.output();
  EXPECT_EQ(WEXITSTATUS(status), 0) << launch.output();
  EXPECT_EQ(count_occurrences(launch.output(), "chain   ******* (fakesink0:sink)"), 30u)
      << launch.output();
  EXPECT_EQ(pending_errors(server), "");
}

TEST_F(LifecycleTest, GstLaunchClientExitsNonZeroForUntrustedServer) {
  Pipeline server(server_desc());
  ASSERT_TRUE(server.ok());
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  int port = current_port(server.element("sink"));
  ASSERT_GT(port, 0);
  GstLaunch launch("tlsframesrc host=127.0.0.1 port=" + std::to_string(port) + " ca-file=\"" +
                   pki.other_ca() + "\" ! fakesink sync=false");
  int status = launch.join();
  ASSERT_EQ(launch.spawn_error(), "");
  ASSERT_TRUE(WIFEXITED(status)) << launch.output();
  EXPECT_NE(WEXITSTATUS(status), 0) << launch.output();
  EXPECT_NE(WEXITSTATUS(status), 124) << "gst-launch-1.0 hung until `timeout` killed it";
  EXPECT_NE(launch.output().find("verification failed"), std::string::npos) << launch.output();
  EXPECT_EQ(pending_errors(server), "");
}

// Slack over the baseline taken after the first round: GLib's shared thread
// pool (which GstTaskPool uses for streaming threads) keeps up to 2 idle
// threads and may grow by one when a client's and the server's streaming
// threads overlap; buses and clocks may open an fd lazily. A leak of one
// socket or thread per round (50 rounds) is far above this.
constexpr size_t kThreadSlack = 2;
constexpr size_t kFdSlack = 2;
constexpr int kRounds = 50;

TEST_F(LifecycleTest, SinkNullPlayingNullFiftyTimesLeaksNoSocketsOrThreads) {
  Pipeline server(server_desc());
  ASSERT_TRUE(server.ok());
  GstElement *sink = server.element("sink");
  size_t base_fds = 0, base_threads = 0;
  for (int round = 0; round < kRounds; ++round) {
    ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE) << "round " << round;
    int port = current_port(sink);
    ASSERT_GT(port, 0) << "round " << round;
    if (round % 10 == 5) {  // a client in some rounds: its session must be freed too
      Pipeline client(client_desc(port));
      ASSERT_EQ(client.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS) << "round " << round;
      ASSERT_TRUE(wait_num_clients(
          sink, [](guint n) { return n == 1; }, kWait));
    }
    ASSERT_EQ(server.set_state(GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS) << "round " << round;
    EXPECT_EQ(current_port(sink), 0);
    if (round == 0) {
      base_fds = open_fd_count();
      base_threads = thread_count();
    }
  }
  EXPECT_LE(open_fd_count(), base_fds + kFdSlack) << "baseline " << base_fds;
  EXPECT_LE(thread_count(), base_threads + kThreadSlack) << "baseline " << base_threads;
  EXPECT_EQ(pending_errors(server), "");
}

TEST_F(LifecycleTest, SrcNullPlayingNullFiftyTimesLeaksNoSocketsOrThreads) {
  Pipeline server(server_desc());
  ASSERT_TRUE(server.ok());
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstElement *sink = server.element("sink");
  int port = current_port(sink);
  ASSERT_GT(port, 0);

  Pipeline client(client_desc(port));
  ASSERT_TRUE(client.ok());
  size_t base_fds = 0, base_threads = 0;
  for (int round = 0; round < kRounds; ++round) {
    // SUCCESS only once the appsink got a buffer: each round really connected.
    ASSERT_EQ(client.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS)
        << "round " << round << ": " << pending_errors(client);
    ASSERT_EQ(client.set_state(GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS) << "round " << round;
    if (round == 0) {
      // Wait for the server to see the disconnect so its session is not counted.
      ASSERT_TRUE(wait_num_clients(
          sink, [](guint n) { return n == 0; }, kWait));
      base_fds = open_fd_count();
      base_threads = thread_count();
    }
  }
  ASSERT_TRUE(wait_num_clients(
      sink, [](guint n) { return n == 0; }, kWait))
      << "the server still has " << num_clients(sink) << " clients";
  EXPECT_EQ(sink_stat(sink, "clients-total"), static_cast<guint64>(kRounds));
  EXPECT_LE(open_fd_count(), base_fds + kFdSlack) << "baseline " << base_fds;
  EXPECT_LE(thread_count(), base_threads + kThreadSlack) << "baseline " << base_threads;
  EXPECT_EQ(pending_errors(server), "");
  EXPECT_EQ(pending_errors(client), "");
}

TEST_F(LifecycleTest, SrcStuckInHandshakeReachesNullWithinTwoSeconds) {
  SilentServer silent;
  ASSERT_GT(silent.port(), 0);
  // connect-timeout far above the bound: only unlock() can end the wait in time.
  Pipeline client("tlsframesrc host=127.0.0.1 port=" + std::to_string(silent.port()) +
                  " connect-timeout=60 ca-file=\"" + pki.ca() + "\" ! appsink name=out sync=false");
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(silent.accept_one(kWait));
  // The ClientHello arrived: the src is now waiting for the server's answer.
  ASSERT_GT(silent.read_some(kWait), 0);

  auto t0 = Clock::now();
  EXPECT_EQ(gst_element_set_state(client.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  auto elapsed = Clock::now() - t0;
  EXPECT_LT(elapsed, 2s) << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                         << " ms";
  // And its socket was closed.
  ssize_t n;
  auto deadline = Clock::now() + kWait;
  while ((n = silent.read_some(kWait)) > 0 && Clock::now() < deadline) {
  }
  EXPECT_EQ(n, 0) << "the src did not close its connection";
}

TEST_F(LifecycleTest, PausingAndResumingTheSinkKeepsClientsConnected) {
  RemovedRecorder removed;
  Pipeline server(server_desc());
  ASSERT_TRUE(server.ok());
  GstElement *sink = server.element("sink");
  g_signal_connect(sink, "client-removed", G_CALLBACK(RemovedRecorder::on_removed), &removed);
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  int port = current_port(sink);
  ASSERT_GT(port, 0);

  Pipeline a(client_desc(port, "sync=false max-buffers=2 drop=true"));
  Pipeline b(client_desc(port, "sync=false max-buffers=2 drop=true"));
  ASSERT_EQ(a.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  ASSERT_EQ(b.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  ASSERT_TRUE(wait_num_clients(
      sink, [](guint n) { return n == 2; }, kWait));

  for (GstState s : {GST_STATE_PAUSED, GST_STATE_PLAYING, GST_STATE_PAUSED, GST_STATE_PLAYING}) {
    EXPECT_NE(server.set_state(s), GST_STATE_CHANGE_FAILURE) << gst_element_state_get_name(s);
    EXPECT_EQ(num_clients(sink), 2u) << "after " << gst_element_state_get_name(s);
    EXPECT_EQ(current_port(sink), port);
  }
  EXPECT_TRUE(receives_fresh(a, sink, 3, kWait));
  EXPECT_TRUE(receives_fresh(b, sink, 3, kWait));
  EXPECT_EQ(num_clients(sink), 2u);
  EXPECT_EQ(removed.count(), 0u) << "client-removed was emitted";
  EXPECT_EQ(pending_errors(server), "");
  EXPECT_EQ(pending_errors(a), "");
  EXPECT_EQ(pending_errors(b), "");
}

struct StopFromHandler {
  GstElement *pipeline = nullptr;
  std::atomic<int> result{-1};
  Waiter waiter;
  static void on_added(GstElement *, guint64, const gchar *, const gchar *, gpointer data) {
    auto *self = static_cast<StopFromHandler *>(data);
    if (self->result.load() != -1) return;
    // Stops the whole pipeline from inside the element's own signal.
    self->result = gst_element_set_state(self->pipeline, GST_STATE_NULL);
    self->waiter.notify();
  }
};

TEST_F(LifecycleTest, ClientAddedHandlerMayStopThePipeline) {
  StopFromHandler stopper;
  Pipeline server(server_desc());
  ASSERT_TRUE(server.ok());
  stopper.pipeline = server.get();
  GstElement *sink = server.element("sink");
  g_signal_connect(sink, "client-added", G_CALLBACK(StopFromHandler::on_added), &stopper);
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  int port = current_port(sink);
  ASSERT_GT(port, 0);
  Pipeline client("tlsframesrc host=127.0.0.1 port=" + std::to_string(port) +
                  " ca-file=" + pki.ca() + " ! fakesink");
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(stopper.waiter.wait_for([&] { return stopper.result.load() != -1; }, kWait))
      << "the handler did not return";
  EXPECT_EQ(stopper.result.load(), GST_STATE_CHANGE_SUCCESS);
  GstState state = GST_STATE_VOID_PENDING;
  gst_element_get_state(server.get(), &state, nullptr, 0);
  EXPECT_EQ(state, GST_STATE_NULL);
  EXPECT_EQ(current_port(sink), 0);
  g_signal_handlers_disconnect_by_data(sink, &stopper);
}

}  // namespace
}  // namespace tlsframe::test
