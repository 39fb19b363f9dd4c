// Security policy of tlsframesink / tlsframesrc over real loopback TLS.
//
// Every case follows one pattern: a server pipeline serves a good client that
// receives buffers; then a bad peer (wrong trust, wrong name, bad dates, old
// TLS, missing or rogue client certificate, garbage bytes, an oversized
// message) fails with a readable element error on its own bus, its pipeline
// goes to NULL promptly, the good client keeps receiving buffers published
// after the failure, and the server posts no ERROR.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "common/pki.h"
#include "common/raw_tls.h"
#include "element/gst_util.h"

namespace tlsframe::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = std::chrono::milliseconds(5000);  // generous bound for any one condition
constexpr auto kPromptNull = std::chrono::milliseconds(2000);

::testing::AssertionResult Contains(const std::string &text, const std::string &needle) {
  if (text.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << needle << "' not found in: " << text;
}

// The first ERROR on a pipeline's bus, with its origin.
struct BusError {
  bool found = false;
  std::string text;    // user-facing message
  std::string debug;   // debug text (OpenSSL detail)
  std::string source;  // name of the element that posted it
  GQuark domain = 0;
  int code = 0;
};

BusError wait_bus_error(Pipeline &p, std::chrono::milliseconds timeout) {
  BusError e;
  GstMessage *msg = p.wait_message(GST_MESSAGE_ERROR, timeout);
  if (!msg) return e;
  GError *err = nullptr;
  gchar *dbg = nullptr;
  gst_message_parse_error(msg, &err, &dbg);
  e.found = true;
  e.text = err ? err->message : "";
  e.debug = dbg ? dbg : "";
  e.domain = err ? err->domain : 0;
  e.code = err ? err->code : 0;
  e.source = GST_OBJECT_NAME(GST_MESSAGE_SRC(msg));
  g_clear_error(&err);
  g_free(dbg);
  gst_message_unref(msg);
  return e;
}

// Records client-added subjects (emitted from the server's I/O threads).
struct AddedRecorder {
  std::mutex mutex;
  std::vector<std::string> subjects;
  Waiter waiter;

  size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return subjects.size();
  }
  static void on_added(GstElement *, guint64, const gchar *, const gchar *subject, gpointer data) {
    auto *self = static_cast<AddedRecorder *>(data);
    {
      std::lock_guard<std::mutex> lock(self->mutex);
      self->subjects.push_back(subject ? subject : "");
    }
    self->waiter.notify();
  }
};

// A blocking TCP connection to 127.0.0.1:port, or -1, with every blocking
// read/write done on it by the test bounded to 5 s.
int tcp_connect(int port) {
  int fd = connect_tcp(port);
  if (fd < 0) return -1;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool send_all(int fd, const void *data, size_t size) {
  const auto *p = static_cast<const uint8_t *>(data);
  while (size > 0) {
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// A raw client limited to TLS 1.2 (the element cannot lower its maximum),
// verifying the server as the element would.
RawTlsOptions tls12_options(const std::string &ca_file) {
  RawTlsOptions o;
  o.ca_file = ca_file;
  o.verify_name = "localhost";
  o.max_version = TLS1_2_VERSION;
  o.io_timeout = std::chrono::seconds(5);
  return o;
}

class PolicyTest : public ::testing::Test {
 protected:
  void SetUp() override { init_gstreamer(); }

  // The usual live JPEG server; `extra` adds sink properties.
  std::string server_desc(const std::string &cert, const std::string &key,
                          const std::string &extra = "") {
    return "videotestsrc is-live=true pattern=ball ! "
           "video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc ! "
           "tlsframesink name=sink port=0 host=127.0.0.1 cert-file=\"" +
           cert + "\" key-file=\"" + key + "\" " + extra;
  }
  std::string good_server_desc(const std::string &extra = "") {
    return server_desc(pki.server_cert(), pki.server_key(), extra);
  }
  // `extra` adds src properties (and may override ca-file: the last value wins).
  std::string client_desc(int port, const std::string &extra = "") {
    return "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) + " ca-file=\"" +
           pki.ca() + "\" " + extra + " ! appsink name=out sync=false max-buffers=2 drop=true";
  }

  // Starts a server pipeline; returns its port (0 on failure, with a test failure).
  int start_server(Pipeline &server) {
    if (!server.ok()) return 0;
    EXPECT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE)
        << pending_errors(server);
    int port = current_port(server.element("sink"));
    EXPECT_GT(port, 0);
    return port;
  }

  // Runs a bad tlsframesrc: it must post an element error (RESOURCE unless given) from the
  // src containing every needle, and reach NULL within kPromptNull.
  void expect_bad_client_fails(const std::string &desc, const std::vector<std::string> &needles,
                               GQuark domain = GST_RESOURCE_ERROR) {
    Pipeline bad(desc);
    ASSERT_TRUE(bad.ok());
    // Not Pipeline::set_state: it would wait for the first buffer, and the
    // error that aborts that wait is what this checks on the bus.
    ASSERT_NE(gst_element_set_state(bad.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    BusError e = wait_bus_error(bad, kWait);
    ASSERT_TRUE(e.found) << "no ERROR from the bad client";
    EXPECT_EQ(e.source, "src");
    EXPECT_EQ(e.domain, domain) << e.text;
    for (const auto &n : needles) EXPECT_TRUE(Contains(e.text, n)) << "debug: " << e.debug;
    auto t0 = Clock::now();
    EXPECT_EQ(bad.set_state(GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    EXPECT_LT(Clock::now() - t0, kPromptNull);
  }

  // The shared pattern: good server + good client receiving, then `bad_desc`
  // (built from the port of `bad_server` if given, else of the good server)
  // fails with `needles`, and the good client keeps receiving.
  void run_bad_client_case(const std::function<std::string(int)> &bad_desc,
                           const std::vector<std::string> &needles,
                           const std::string &bad_server_cert = "",
                           const std::string &bad_server_key = "") {
    Pipeline server(good_server_desc());
    int port = start_server(server);
    ASSERT_GT(port, 0);
    GstElement *sink = server.element("sink");
    Pipeline good(client_desc(port));
    ASSERT_NE(good.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    ASSERT_TRUE(receives_fresh(good, sink, 3, kWait));

    std::unique_ptr<Pipeline> other;
    int bad_port = port;
    if (!bad_server_cert.empty()) {
      other = std::make_unique<Pipeline>(server_desc(bad_server_cert, bad_server_key));
      bad_port = start_server(*other);
      ASSERT_GT(bad_port, 0);
    }
    expect_bad_client_fails(bad_desc(bad_port), needles);
    if (HasFatalFailure()) return;

    EXPECT_TRUE(receives_fresh(good, sink, 3, kWait));
    EXPECT_EQ(num_clients(sink), 1u);
    // The bad client never completed a handshake the server accepted.
    EXPECT_EQ(sink_stat(sink, "clients-total"), 1u);
    EXPECT_EQ(pending_errors(server), "");
    if (other) {
      EXPECT_EQ(sink_stat(other->element("sink"), "clients-total"), 0u);
      EXPECT_EQ(pending_errors(*other), "");
    }
  }

  Pki pki;
};

// --- server authentication -------------------------------------------------

TEST_F(PolicyTest, UntrustedServerCaFailsVerificationWithIssuerError) {
  run_bad_client_case(
      [&](int port) { return client_desc(port, "ca-file=\"" + pki.other_ca() + "\""); },
      {"verification failed", "issuer"});
}

TEST_F(PolicyTest, WrongServerNameFailsWithHostnameMismatch) {
  run_bad_client_case([&](int port) { return client_desc(port, "server-name=wrong.example"); },
                      {"verification failed", "hostname mismatch"});
}

TEST_F(PolicyTest, ExpiredServerCertificateFailsWithExpired) {
  run_bad_client_case([&](int port) { return client_desc(port); }, {"expired"}, pki.expired_cert(),
                      pki.expired_key());
}

TEST_F(PolicyTest, NotYetValidServerCertificateFailsWithNotYetValid) {
  run_bad_client_case([&](int port) { return client_desc(port); }, {"not yet valid"},
                      pki.not_yet_valid_cert(), pki.not_yet_valid_key());
}

TEST_F(PolicyTest, SelfSignedServerCertificateFailsVerification) {
  run_bad_client_case([&](int port) { return client_desc(port); },
                      {"verification failed", "self-signed"}, pki.self_signed_cert(),
                      pki.self_signed_key());
}

// A certificate from the trusted CA for the right name, but for client use only.
TEST_F(PolicyTest, ServerCertificateWithClientOnlyKeyUsageFailsWithUnsuitablePurpose) {
  run_bad_client_case([&](int port) { return client_desc(port); },
                      {"verification failed", "certificate purpose"}, pki.wrong_usage_cert(),
                      pki.wrong_usage_key());
}

// The server sends its leaf without the intermediate CA: the client, which
// trusts only the root, cannot build the chain.
TEST_F(PolicyTest, ServerChainMissingItsIntermediateFailsWithIssuerError) {
  run_bad_client_case([&](int port) { return client_desc(port); },
                      {"verification failed", "local issuer"}, pki.chained_server_leaf_only(),
                      pki.chained_server_key());
}

// Control for the case above: with the intermediate in cert-file the same leaf is accepted.
TEST_F(PolicyTest, ServerChainWithItsIntermediateIsAccepted) {
  Pipeline server(server_desc(pki.chained_server_cert(), pki.chained_server_key()));
  int port = start_server(server);
  ASSERT_GT(port, 0);
  Pipeline client(client_desc(port));
  ASSERT_NE(client.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  EXPECT_TRUE(receives_fresh(client, server.element("sink"), 3, kWait));
  EXPECT_EQ(pending_errors(server), "");
}

// --- TLS version -------------------------------------------------------------

TEST_F(PolicyTest, Tls12ClientIsRefusedByDefaultServerAndAcceptedWithMinTls12) {
  Pipeline server(good_server_desc());
  int port = start_server(server);
  ASSERT_GT(port, 0);
  GstElement *sink = server.element("sink");
  Pipeline good(client_desc(port));
  ASSERT_NE(good.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(receives_fresh(good, sink, 3, kWait));

  {
    RawTlsClient old;
    EXPECT_FALSE(old.connect(port, tls12_options(pki.ca())))
        << "TLS 1.2 handshake succeeded against a TLS 1.3-only server";
    const std::string &errors = old.error();
    EXPECT_TRUE(errors.find("protocol version") != std::string::npos ||
                errors.find("unsupported protocol") != std::string::npos ||
                errors.find("alert") != std::string::npos)
        << errors;
  }
  EXPECT_TRUE(receives_fresh(good, sink, 3, kWait));
  EXPECT_EQ(sink_stat(sink, "clients-total"), 1u);
  EXPECT_EQ(pending_errors(server), "");

  // The same client against a server that accepts TLS 1.2.
  AddedRecorder added;
  Pipeline legacy(good_server_desc("min-tls-version=1.2"));
  g_signal_connect(legacy.element("sink"), "client-added", G_CALLBACK(AddedRecorder::on_added),
                   &added);
  int legacy_port = start_server(legacy);
  ASSERT_GT(legacy_port, 0);
  {
    RawTlsClient old;
    ASSERT_TRUE(old.connect(legacy_port, tls12_options(pki.ca()))) << old.error();
    EXPECT_EQ(SSL_version(old.ssl()), TLS1_2_VERSION);
    EXPECT_EQ(SSL_get_verify_result(old.ssl()), X509_V_OK);
    // The server serves it: the first bytes of the stream arrive over TLS 1.2.
    char buf[256];
    EXPECT_GT(SSL_read(old.ssl(), buf, sizeof buf), 0) << "no stream bytes over TLS 1.2";
    EXPECT_TRUE(added.waiter.wait_for([&] { return added.count() == 1; }, kWait));
  }
  EXPECT_TRUE(receives_fresh(good, sink, 3, kWait));
  EXPECT_EQ(pending_errors(server), "");
  EXPECT_EQ(pending_errors(legacy), "");
}

// --- mutual TLS --------------------------------------------------------------

class MutualTlsTest : public PolicyTest {
 protected:
  std::string mtls_server_desc() {
    return good_server_desc("require-client-cert=true ca-file=\"" + pki.ca() + "\"");
  }
  std::string good_client_desc(int port) {
    return client_desc(
        port, "cert-file=\"" + pki.client_cert() + "\" key-file=\"" + pki.client_key() + "\"");
  }

  void run_mtls_case(const std::string &bad_extra, const std::vector<std::string> &needles) {
    AddedRecorder added;
    Pipeline server(mtls_server_desc());
    ASSERT_TRUE(server.ok());
    GstElement *sink = server.element("sink");
    g_signal_connect(sink, "client-added", G_CALLBACK(AddedRecorder::on_added), &added);
    int port = start_server(server);
    ASSERT_GT(port, 0);

    Pipeline good(good_client_desc(port));
    ASSERT_NE(good.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    ASSERT_TRUE(receives_fresh(good, sink, 3, kWait));
    ASSERT_TRUE(added.waiter.wait_for([&] { return added.count() == 1; }, kWait));
    {
      std::lock_guard<std::mutex> lock(added.mutex);
      // pki's client certificate has CN=client1.
      EXPECT_TRUE(Contains(added.subjects[0], "client1"));
    }

    expect_bad_client_fails(client_desc(port, bad_extra), needles);
    if (HasFatalFailure()) return;

    EXPECT_TRUE(receives_fresh(good, sink, 3, kWait));
    EXPECT_EQ(added.count(), 1u) << "the bad client was reported as added";
    EXPECT_EQ(num_clients(sink), 1u);
    EXPECT_EQ(pending_errors(server), "");
  }
};

TEST_F(MutualTlsTest, ClientWithoutCertificateIsToldAClientCertificateIsRequired) {
  run_mtls_case("", {"client certificate"});
}

TEST_F(MutualTlsTest, ClientWithRogueCertificateIsRefused) {
  run_mtls_case(
      "cert-file=\"" + pki.rogue_client_cert() + "\" key-file=\"" + pki.rogue_client_key() + "\"",
      {"refused"});
}

// --- server configuration errors --------------------------------------------

TEST_F(PolicyTest, SinkWithMissingCertFileFailsToStartNamingTheFile) {
  std::string missing = pki.path("does-not-exist.pem");
  Pipeline server(server_desc(missing, pki.server_key()));
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  BusError e = wait_bus_error(server, kWait);
  ASSERT_TRUE(e.found);
  EXPECT_EQ(e.source, "sink");
  EXPECT_EQ(e.domain, GST_RESOURCE_ERROR);
  EXPECT_TRUE(Contains(e.text, missing));
  EXPECT_TRUE(Contains(e.text, "certificate file"));
}

TEST_F(PolicyTest, SinkWithKeyNotMatchingCertFailsToStartSayingItDoesNotMatch) {
  Pipeline server(server_desc(pki.server_cert(), pki.client_key()));
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  BusError e = wait_bus_error(server, kWait);
  ASSERT_TRUE(e.found);
  EXPECT_EQ(e.source, "sink");
  EXPECT_TRUE(Contains(e.text, "does not match"));
  EXPECT_TRUE(Contains(e.text, pki.client_key()));
}

// A certificate that loads but that clients will refuse: the sink still
// starts (clients report the precise error at connect) and warns at once.
TEST_F(PolicyTest, SinkWarnsAtStartAboutACertificateClientsWillRefuse) {
  struct Case {
    std::string cert, key, needle;
  };
  const Case cases[] = {
      {pki.expired_cert(), pki.expired_key(), "expired on"},
      {pki.not_yet_valid_cert(), pki.not_yet_valid_key(), "not valid until"},
      {pki.wrong_usage_cert(), pki.wrong_usage_key(), "not for TLS server use"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.needle);
    Pipeline server(server_desc(c.cert, c.key));
    ASSERT_GT(start_server(server), 0);
    GstMessage *msg = server.wait_message(GST_MESSAGE_WARNING, kWait);
    ASSERT_NE(msg, nullptr) << "no warning";
    GError *err = nullptr;
    gst_message_parse_warning(msg, &err, nullptr);
    EXPECT_EQ(std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))), "sink");
    EXPECT_TRUE(Contains(err ? err->message : "", "Clients will refuse"));
    EXPECT_TRUE(Contains(err ? err->message : "", c.needle));
    g_clear_error(&err);
    gst_message_unref(msg);
  }
  // And none for a good certificate.
  Pipeline good(good_server_desc());
  ASSERT_GT(start_server(good), 0);
  EXPECT_EQ(good.wait_message(GST_MESSAGE_WARNING, 300ms), nullptr);
}

// ca-file without require-client-cert makes client certificates optional:
// a client with none is served. The operator must hear about it (issue 14, item 8).
TEST_F(PolicyTest, SinkWarnsAtStartThatCaFileWithoutRequireClientCertMakesCertificatesOptional) {
  Pipeline server(good_server_desc("ca-file=\"" + pki.ca() + "\""));
  ASSERT_GT(start_server(server), 0);
  GstMessage *msg = server.wait_message(GST_MESSAGE_WARNING, kWait);
  ASSERT_NE(msg, nullptr) << "no warning";
  GError *err = nullptr;
  gst_message_parse_warning(msg, &err, nullptr);
  std::string text = err ? err->message : "";
  EXPECT_EQ(std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))), "sink");
  EXPECT_TRUE(Contains(text, "ca-file"));
  EXPECT_TRUE(Contains(text, "require-client-cert"));
  EXPECT_TRUE(Contains(text, "optional"));
  g_clear_error(&err);
  gst_message_unref(msg);
  // With require-client-cert too: no warning.
  Pipeline strict(good_server_desc("ca-file=\"" + pki.ca() + "\" require-client-cert=true"));
  ASSERT_GT(start_server(strict), 0);
  EXPECT_EQ(strict.wait_message(GST_MESSAGE_WARNING, 300ms), nullptr);
}

// --- untrusted input to the server ------------------------------------------

TEST_F(PolicyTest, GarbageAndIdleConnectionsAreDroppedWithoutAffectingClients) {
  constexpr int kIdle = 20;
  AddedRecorder added;
  // 0.5 s handshake timeout so the idle sockets are dropped quickly.
  Pipeline server(good_server_desc("handshake-timeout=500000000"));
  ASSERT_TRUE(server.ok());
  GstElement *sink = server.element("sink");
  int port = start_server(server);
  ASSERT_GT(port, 0);
  Pipeline good(client_desc(port));
  ASSERT_NE(good.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(receives_fresh(good, sink, 3, kWait));
  ASSERT_TRUE(wait_num_clients(
      sink, [](guint n) { return n == 1; }, kWait));
  g_signal_connect(sink, "client-added", G_CALLBACK(AddedRecorder::on_added), &added);
  ASSERT_EQ(sink_stat(sink, "handshake-failures"), 0u);

  std::vector<int> fds;
  struct Closer {
    std::vector<int> &fds;
    ~Closer() {
      for (int fd : fds) ::close(fd);
    }
  } closer{fds};

  // Plain HTTP, random bytes, a truncated ClientHello: each sent, then closed.
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  std::vector<uint8_t> random_bytes(4096);
  std::mt19937 rng(12345);
  for (auto &b : random_bytes) b = static_cast<uint8_t>(rng());
  const uint8_t truncated_hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc};
  const std::vector<std::pair<const void *, size_t>> garbage = {
      {http.data(), http.size()},
      {random_bytes.data(), random_bytes.size()},
      {truncated_hello, sizeof truncated_hello},
  };
  for (const auto &[data, size] : garbage) {
    int fd = tcp_connect(port);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(send_all(fd, data, size));
    ::shutdown(fd, SHUT_WR);
    fds.push_back(fd);
  }
  // Idle sockets that never start a handshake.
  const size_t first_idle = fds.size();
  for (int i = 0; i < kIdle; ++i) {
    int fd = tcp_connect(port);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }

  // The server drops every one of them: garbage at once, idle ones after 0.5 s.
  auto deadline = Clock::now() + kWait;
  for (size_t i = 0; i < fds.size(); ++i) {
    EXPECT_TRUE(closed_by_peer(fds[i], deadline))
        << (i < first_idle ? "garbage" : "idle") << " connection #" << i << " was not closed";
  }
  Waiter poll_stats;  // no signal for handshake failures: re-checked every 50 ms until the deadline
  EXPECT_TRUE(poll_stats.wait_for(
      [&] { return sink_stat(sink, "handshake-failures") >= fds.size(); }, kWait))
      << "handshake-failures=" << sink_stat(sink, "handshake-failures");
  EXPECT_EQ(sink_stat(sink, "handshake-failures"), fds.size());

  EXPECT_TRUE(receives_fresh(good, sink, 3, kWait));
  EXPECT_EQ(added.count(), 0u) << "a garbage or idle connection was reported as a client";
  EXPECT_TRUE(wait_num_clients(
      sink, [](guint n) { return n == 1; }, kWait))
      << "num-clients=" << num_clients(sink);
  EXPECT_EQ(pending_errors(server), "");
}

// --- untrusted input to the client ------------------------------------------

TEST_F(PolicyTest, MessageLargerThanMaxMessageSizeFailsNamingTheMaximum) {
  Pipeline server(good_server_desc());
  int port = start_server(server);
  ASSERT_GT(port, 0);
  GstElement *sink = server.element("sink");
  Pipeline good(client_desc(port));
  ASSERT_NE(good.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  size_t largest = 0;
  ASSERT_TRUE(receives_fresh(good, sink, 3, kWait, &largest));
  // Precondition: the 160x120 JPEGs really are larger than the limit below.
  ASSERT_GT(largest, 1024u);

  expect_bad_client_fails(client_desc(port, "max-message-size=1024"), {"maximum", "1024"},
                          GST_STREAM_ERROR);  // bytes that break the protocol: a stream error
  if (HasFatalFailure()) return;

  EXPECT_TRUE(receives_fresh(good, sink, 3, kWait));
  EXPECT_EQ(pending_errors(server), "");
}

}  // namespace
}  // namespace tlsframe::test
