// Random state changes: a tlsframesink server and two tlsframesrc clients
// (reconnect=true) are driven through 200 random NULL/READY/PAUSED/PLAYING
// changes while raw TLS clients keep connecting and disconnecting. Every
// change returns within a bound (no deadlock), nothing crashes, the stream
// works again once everything is PLAYING, and afterwards the process has the
// file descriptors and threads it had before.
//
// PAUSED->PLAYING keeping the sink's clients is proven by
// LifecycleTest.PausingAndResumingTheSinkKeepsClientsConnected.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/pki.h"
#include "common/raw_tls.h"
#include "element/gst_util.h"

namespace tlsframe::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kRounds = 200;
constexpr auto kWait = std::chrono::milliseconds(10000);
constexpr auto kMaxChange = std::chrono::milliseconds(5000);  // any one state change

// Connects, handshakes, reads a little, closes; every step bounded by 2 s timeouts.
// Failures are expected while the server is down, so nothing is asserted.
void churn_once(int port, SSL_CTX *ctx, bool abrupt) {
  RawTlsOptions o;
  o.shared_ctx = ctx;
  o.io_timeout = 2s;
  RawTlsClient c;
  if (c.connect(port, o)) {
    char buf[4096];
    SSL_read(c.ssl(), buf, sizeof buf);
    if (!abrupt) c.close_clean();
  } else if (c.fd() < 0) {
    std::this_thread::sleep_for(5ms);  // server down: pace the retries
    return;
  }
  ERR_clear_error();
  if (abrupt) c.close_reset();
}

class StatesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_gstreamer();
    ::signal(SIGPIPE, SIG_IGN);  // the raw clients write to sockets the server may have reset
  }
  Pki pki;
};

TEST_F(StatesTest, TwoHundredRandomStateChangesWhileClientsComeAndGo) {
  Pipeline server(
      "videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc ! "
      "tlsframesink name=sink port=0 host=127.0.0.1 handshake-timeout=1000000000 "
      "cert-file=\"" +
      pki.server_cert() + "\" key-file=\"" + pki.server_key() + "\"");
  ASSERT_TRUE(server.ok());
  GstElement *sink = server.element("sink");
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  const int port = current_port(sink);
  ASSERT_GT(port, 0);
  // Later starts must come back on the same port for the clients to find it.
  ASSERT_EQ(server.set_state(GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  g_object_set(sink, "port", port, nullptr);

  std::vector<std::unique_ptr<Pipeline>> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(std::make_unique<Pipeline>(
        "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) + " ca-file=\"" +
        pki.ca() +
        "\" reconnect=true max-reconnect-interval=200 connect-timeout=2 ! "
        "appsink name=out sync=false max-buffers=2 drop=true"));
    ASSERT_TRUE(clients.back()->ok());
  }
  std::vector<GstElement *> all = {server.get(), clients[0]->get(), clients[1]->get()};

  // Baseline with everything in NULL, after one full start so lazy
  // allocations (OpenSSL, GLib, thread pools) are made.
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  for (auto &c : clients) {
    ASSERT_NE(gst_element_set_state(c->get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  }
  for (auto &c : clients) ASSERT_TRUE(receives_fresh(*c, sink, 2, kWait));
  for (GstElement *p : all) gst_element_set_state(p, GST_STATE_NULL);
  const size_t base_fds = open_fd_count(), base_threads = thread_count();

  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_NE(ctx, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> churned{0};
  std::thread churner([&] {
    for (int i = 0; !stop && i < 100000; ++i) {
      churn_once(port, ctx, i % 3 == 0);
      churned++;
    }
  });

  const unsigned seed = 20261124;
  std::mt19937 rng(seed);
  const GstState states[] = {GST_STATE_NULL, GST_STATE_READY, GST_STATE_PAUSED, GST_STATE_PLAYING};
  int changes[3] = {0, 0, 0};
  auto longest = Clock::duration::zero();
  for (int round = 0; round < kRounds; ++round) {
    const size_t which = rng() % all.size();
    const GstState target = states[rng() % 4];
    auto t0 = Clock::now();
    GstStateChangeReturn r = gst_element_set_state(all[which], target);
    if (which == 0 && r == GST_STATE_CHANGE_ASYNC) {
      // The server prerolls on its own live source; a client only on data, so only
      // the server is waited for.
      r = gst_element_get_state(all[which], nullptr, nullptr, 5 * GST_SECOND);
    }
    auto took = Clock::now() - t0;
    longest = std::max(longest, took);
    ASSERT_NE(r, GST_STATE_CHANGE_FAILURE)
        << "round " << round << ": " << (which == 0 ? "server" : "client") << " to "
        << gst_element_state_get_name(target) << ": "
        << pending_errors(which == 0 ? server : *clients[which - 1]);
    ASSERT_LT(took, kMaxChange) << "round " << round << ": state change took too long";
    changes[which]++;
    // Random dwell so changes land at every point of connects, handshakes and
    // reads: varied timing is the input here, not a synchronisation.
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 40));
  }
  stop = true;
  churner.join();
  SSL_CTX_free(ctx);

  // Everything PLAYING again: both clients get the stream (reconnecting if needed).
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  for (auto &c : clients) {
    ASSERT_NE(gst_element_set_state(c->get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  }
  for (auto &c : clients) EXPECT_TRUE(receives_fresh(*c, sink, 3, kWait));
  EXPECT_EQ(pending_errors(server), "");
  for (auto &c : clients) EXPECT_EQ(pending_errors(*c), "");

  for (GstElement *p : all) {
    EXPECT_EQ(gst_element_set_state(p, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
  // Sockets and threads go away asynchronously (closed sessions, GLib pools): bounded poll.
  Waiter settle;
  EXPECT_TRUE(settle.wait_for(
      [&] { return open_fd_count() <= base_fds && thread_count() <= base_threads; }, kWait))
      << "fds " << base_fds << " -> " << open_fd_count() << ", threads " << base_threads << " -> "
      << thread_count();
  std::printf(
      "%d random state changes (seed %u): server %d, client A %d, client B %d; %d raw "
      "connect/disconnect cycles; longest change %lld ms; fds %zu -> %zu, threads %zu -> %zu\n",
      kRounds, seed, changes[0], changes[1], changes[2], churned.load(),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(longest).count()),
      base_fds, open_fd_count(), base_threads, thread_count());
}

}  // namespace
}  // namespace tlsframe::test
