// Who may watch, with real tlsframesink and tlsframesrc elements (issue 12):
// crl-file (a revoked client refused at connect; one revoked while watching
// removed within 1 s of the reload while another keeps its stream; an
// expired CRL warns), authorized-clients on two streams of one port, and the
// accept-client signal (refusing, a handler that sleeps 5 s delaying no
// other client, no answer within handshake-timeout refusing). Certificates
// and CRLs are made at test time.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/pki.h"
#include "core/certgen.h"
#include "element/gst_util.h"

using namespace std::chrono_literals;

namespace tlsframe::test {
namespace {

constexpr std::chrono::milliseconds kWait{10000};
constexpr int kStatusForbidden = 6;  // GST_TLS_FRAME_CLIENT_STATUS_FORBIDDEN
constexpr int kStatusRevoked = 7;    // GST_TLS_FRAME_CLIENT_STATUS_REVOKED

// What accept-client handlers saw and decide: the test thread sets the
// policy, handlers (on the sink's signal thread) record and answer.
struct AcceptLog {
  std::mutex mutex;  // protects the fields below
  std::vector<GstStructure *> infos;
  std::vector<std::thread::id> threads;
  std::string refuse_subject;    // refuse a client with this subject
  std::string slow_subject;      // sleep 5 s before answering for this subject
  bool hold = false;             // block every answer until released (bounded)
  std::condition_variable released;
  Waiter waiter;

  ~AcceptLog() {
    for (GstStructure *s : infos) gst_structure_free(s);
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return infos.size();
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      hold = false;
    }
    released.notify_all();
  }

  static gboolean on_accept(GstElement *, guint64, GstStructure *info, gpointer data) {
    auto *self = static_cast<AcceptLog *>(data);
    const std::string subject = gst_structure_get_string(info, "subject");
    bool slow = false;
    bool refuse = false;
    {
      std::unique_lock<std::mutex> lock(self->mutex);
      self->infos.push_back(gst_structure_copy(info));
      self->threads.push_back(std::this_thread::get_id());
      slow = subject == self->slow_subject;
      refuse = subject == self->refuse_subject;
      self->waiter.notify();
      // An application that does not answer: blocks until the test releases it (bounded).
      self->released.wait_for(lock, kWait, [self] { return !self->hold; });
    }
    // The behaviour under test: an application taking 5 s to decide.
    if (slow) std::this_thread::sleep_for(5s);
    return refuse ? FALSE : TRUE;
  }
};

class AuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_gstreamer();
    port_ = free_port();
    ASSERT_GT(port_, 0);
    ASSERT_TRUE(pki_.issue_client("victim", "victim"));
    ASSERT_TRUE(pki_.issue_client("viewer", "viewer", {"door-viewer.example"}));
    ASSERT_TRUE(pki_.issue_client("other", "other"));
    ASSERT_TRUE(pki_.write_crl("empty.crl", {}));
  }

  // A live JPEG stream served by a sink under mutual TLS.
  std::string server(const std::string &stream, const std::string &extra = "",
                     bool require = true) const {
    return "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=30/1 ! jpegenc ! "
           "tlsframesink name=sink host=127.0.0.1 port=" +
           std::to_string(port_) + (stream.empty() ? "" : " stream-name=" + stream) +
           " cert-file=" + pki_.server_cert() + " key-file=" + pki_.server_key() +
           " ca-file=" + pki_.ca() + (require ? " require-client-cert=true " : " ") + extra;
  }
  // A client presenting <stem>.pem.
  std::string client(const std::string &stem, const std::string &stream = "") const {
    return "tlsframesrc host=127.0.0.1 port=" + std::to_string(port_) + " ca-file=" + pki_.ca() +
           " cert-file=" + pki_.path(stem + ".pem") + " key-file=" + pki_.path(stem + ".key") +
           (stream.empty() ? "" : " stream-name=" + stream) +
           " ! appsink name=out sync=false max-buffers=2 drop=true";
  }
  static void play(Pipeline &p) {
    ASSERT_NE(gst_element_set_state(p.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  }

  Pki pki_;
  int port_ = 0;
};

TEST_F(AuthzTest, RevokedClientRefusedAtConnectAndOneRevokedWhileWatchingRemovedWithinOneSecond) {
  ASSERT_TRUE(pki_.write_crl("first.crl", {pki_.path("other.pem")}));
  Pipeline srv(server("", "crl-file=" + pki_.path("first.crl")));
  ASSERT_TRUE(srv.ok());
  GstElement *sink = srv.element("sink");
  RemovedRecorder removed;
  g_signal_connect(sink, "client-removed", G_CALLBACK(RemovedRecorder::on_removed), &removed);
  ASSERT_NE(srv.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE) << pending_errors(srv);

  // Revoked at connect: the TLS alert ends the client (no client-added, no client-removed).
  {
    Pipeline revoked(client("other"));
    play(revoked);
    const std::string error = revoked.wait_error(kWait);
    EXPECT_NE(error.find("revoked"), std::string::npos) << error;
  }

  Pipeline victim(client("victim"));
  Pipeline viewer(client("viewer"));
  play(victim);
  play(viewer);
  ASSERT_TRUE(receives_fresh(victim, sink, 3, kWait));
  ASSERT_TRUE(receives_fresh(viewer, sink, 3, kWait));

  // Revoke the victim too: the same file rewritten, and set again.
  ASSERT_TRUE(pki_.write_crl("first.crl", {pki_.path("other.pem"), pki_.path("victim.pem")}));
  const auto reload_at = std::chrono::steady_clock::now();
  g_object_set(sink, "crl-file", pki_.path("first.crl").c_str(), nullptr);
  ASSERT_TRUE(removed.waiter.wait_for([&] { return removed.count_status(kStatusRevoked) == 1; },
                                      1000ms))
      << "the revoked client was not removed within 1 s";
  const auto after = std::chrono::steady_clock::now() - reload_at;
  std::printf("revoked client removed %.0f ms after crl-file was set\n",
              std::chrono::duration<double, std::milli>(after).count());
  const std::string error = victim.wait_error(kWait);
  EXPECT_NE(error.find("certificate revoked"), std::string::npos) << error;
  // The other client keeps its stream, without drops.
  ASSERT_TRUE(receives_fresh(viewer, sink, 30, kWait));
  EXPECT_EQ(num_clients(sink), 1u);
  EXPECT_EQ(sink_stat(sink, "frames-dropped"), 0u);
  EXPECT_EQ(removed.count(), 1u);
  EXPECT_EQ(pending_errors(srv), "");
}

TEST_F(AuthzTest, ExpiredCrlWarnsAtStartAndAtReload) {
  ASSERT_TRUE(pki_.write_crl("old.crl", {}, -3600));
  Pipeline srv(server("", "crl-file=" + pki_.path("old.crl")));
  ASSERT_TRUE(srv.ok());
  ASSERT_NE(srv.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE) << pending_errors(srv);
  std::string warning = srv.wait_warning(kWait);
  EXPECT_NE(warning.find("next update has passed"), std::string::npos) << warning;
  EXPECT_NE(warning.find("refused"), std::string::npos) << warning;

  g_object_set(srv.element("sink"), "crl-file", pki_.path("empty.crl").c_str(), nullptr);
  g_object_set(srv.element("sink"), "crl-file", pki_.path("old.crl").c_str(), nullptr);
  warning = srv.wait_warning(kWait);
  EXPECT_NE(warning.find("next update has passed"), std::string::npos) << warning;
  EXPECT_EQ(pending_errors(srv), "");
}

// Two streams of one port with different rules: cam1 by CN, door by DNS
// name and by fingerprint. Allowed clients stream; the others get an error
// saying they are forbidden, and client-removed reports status forbidden.
TEST_F(AuthzTest, AuthorizedClientsByCnDnsAndFingerprintOnTwoStreamsOfOnePort) {
  auto fp = certgen::fingerprint_sha256(Pki::read(pki_.path("other.pem")));
  ASSERT_TRUE(fp.ok());
  std::string fp_plain;
  for (char c : *fp) {
    if (c != ':') fp_plain += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  Pipeline cam1(server("cam1", "authorized-clients=\"<\\\"CN=client1\\\">\""));
  Pipeline door(server("door", "authorized-clients=\"<\\\"DNS:door-viewer.example\\\", "
                               "\\\"sha256:" + fp_plain + "\\\">\""));
  ASSERT_TRUE(cam1.ok() && door.ok());
  RemovedRecorder removed_cam1, removed_door;
  g_signal_connect(cam1.element("sink"), "client-removed", G_CALLBACK(RemovedRecorder::on_removed),
                   &removed_cam1);
  g_signal_connect(door.element("sink"), "client-removed", G_CALLBACK(RemovedRecorder::on_removed),
                   &removed_door);
  ASSERT_NE(cam1.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE) << pending_errors(cam1);
  ASSERT_NE(door.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE) << pending_errors(door);

  GValue rules = G_VALUE_INIT;
  g_value_init(&rules, GST_TYPE_ARRAY);
  g_object_get_property(G_OBJECT(door.element("sink")), "authorized-clients", &rules);
  EXPECT_EQ(gst_value_array_get_size(&rules), 2u);
  g_value_unset(&rules);

  struct Case {
    const char *stem;
    const char *stream;
    Pipeline *server;
    bool allowed;
  };
  const Case cases[] = {
      {"client", "cam1", &cam1, true},  {"viewer", "door", &door, true},
      {"other", "door", &door, true},   {"client", "door", &door, false},
      {"viewer", "cam1", &cam1, false}, {"other", "cam1", &cam1, false},
  };
  std::vector<std::unique_ptr<Pipeline>> watching;
  for (const Case &c : cases) {
    SCOPED_TRACE(std::string(c.stem) + " -> " + c.stream);
    auto p = std::make_unique<Pipeline>(client(c.stem, c.stream));
    play(*p);
    if (c.allowed) {
      EXPECT_TRUE(receives_fresh(*p, c.server->element("sink"), 3, kWait));
      watching.push_back(std::move(p));
    } else {
      const std::string error = p->wait_error(kWait);
      EXPECT_NE(error.find("forbidden"), std::string::npos) << error;
      EXPECT_NE(error.find(c.stream), std::string::npos) << error;
    }
  }
  EXPECT_TRUE(removed_cam1.waiter.wait_for(
      [&] { return removed_cam1.count_status(kStatusForbidden) == 2; }, kWait));
  EXPECT_TRUE(removed_door.waiter.wait_for(
      [&] { return removed_door.count_status(kStatusForbidden) == 1; }, kWait));
  EXPECT_EQ(num_clients(cam1.element("sink")), 1u);
  EXPECT_EQ(num_clients(door.element("sink")), 2u);
  for (auto &p : watching) EXPECT_EQ(pending_errors(*p), "");
}

TEST_F(AuthzTest, AuthorizedClientsWithoutRequireClientCertIsAnErrorNamingBoth) {
  Pipeline srv(server("", "authorized-clients=\"<\\\"CN=client1\\\">\"", /*require=*/false));
  ASSERT_TRUE(srv.ok());
  EXPECT_EQ(srv.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  const std::string error = srv.wait_error(kWait);
  EXPECT_NE(error.find("authorized-clients"), std::string::npos) << error;
  EXPECT_NE(error.find("require-client-cert"), std::string::npos) << error;
}

// accept-client: emitted on the signal thread (the one client-added is
// emitted from), info carries every field, FALSE refuses like forbidden.
TEST_F(AuthzTest, AcceptClientRefusesAndTellsWhoIsAsking) {
  Pipeline srv(server("cam1"));
  ASSERT_TRUE(srv.ok());
  GstElement *sink = srv.element("sink");
  AcceptLog log;
  log.refuse_subject = "/CN=other";
  g_signal_connect(sink, "accept-client", G_CALLBACK(AcceptLog::on_accept), &log);
  RemovedRecorder removed;
  g_signal_connect(sink, "client-removed", G_CALLBACK(RemovedRecorder::on_removed), &removed);
  static std::thread::id added_thread;
  g_signal_connect(sink, "client-added",
                   G_CALLBACK(+[](GstElement *, guint64, const gchar *, const gchar *, gpointer) {
                     added_thread = std::this_thread::get_id();
                   }),
                   nullptr);
  ASSERT_NE(srv.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE) << pending_errors(srv);

  Pipeline viewer(client("viewer", "cam1"));
  play(viewer);
  ASSERT_TRUE(receives_fresh(viewer, sink, 3, kWait));
  Pipeline other(client("other", "cam1"));
  play(other);
  const std::string error = other.wait_error(kWait);
  EXPECT_NE(error.find("forbidden"), std::string::npos) << error;
  EXPECT_TRUE(removed.waiter.wait_for([&] { return removed.count_status(kStatusForbidden) == 1; },
                                      kWait));
  EXPECT_EQ(num_clients(sink), 1u);

  std::lock_guard<std::mutex> lock(log.mutex);
  ASSERT_EQ(log.infos.size(), 2u);
  EXPECT_EQ(log.threads[0], added_thread) << "not emitted from the signal thread";
  EXPECT_NE(log.threads[0], std::this_thread::get_id());
  const GstStructure *info = log.infos[0];
  for (const char *field : {"address", "stream-name", "subject", "issuer", "serial", "sha256",
                            "dns-names", "ip-addresses", "uris", "emails", "not-after"}) {
    EXPECT_TRUE(gst_structure_has_field(info, field)) << field;
  }
  EXPECT_EQ(gst_structure_n_fields(info), 11);
  EXPECT_STREQ(gst_structure_get_string(info, "stream-name"), "cam1");
  EXPECT_STREQ(gst_structure_get_string(info, "subject"), "/CN=viewer");
  EXPECT_STREQ(gst_structure_get_string(info, "issuer"), "/CN=tlsframe test CA");
  EXPECT_EQ(std::string(gst_structure_get_string(info, "address")).rfind("127.0.0.1:", 0), 0u);
  auto fp = certgen::fingerprint_sha256(Pki::read(pki_.path("viewer.pem")));
  EXPECT_EQ(gst_structure_get_string(info, "sha256"), *fp);
  auto serial = certgen::serial_hex(Pki::read(pki_.path("viewer.pem")));
  EXPECT_EQ(gst_structure_get_string(info, "serial"), *serial);
  const GValue *dns = gst_structure_get_value(info, "dns-names");
  ASSERT_EQ(gst_value_array_get_size(dns), 1u);
  EXPECT_STREQ(g_value_get_string(gst_value_array_get_value(dns, 0)), "door-viewer.example");
  EXPECT_EQ(gst_value_array_get_size(gst_structure_get_value(info, "emails")), 0u);
  GstDateTime *not_after = nullptr;
  ASSERT_TRUE(gst_structure_get(info, "not-after", GST_TYPE_DATE_TIME, &not_after, nullptr));
  ASSERT_NE(not_after, nullptr);
  GDateTime *now = g_date_time_new_now_utc();
  GDateTime *expiry = gst_date_time_to_g_date_time(not_after);
  EXPECT_GT(g_date_time_difference(expiry, now), G_TIME_SPAN_DAY * 800);
  g_date_time_unref(expiry);
  g_date_time_unref(now);
  gst_date_time_unref(not_after);
}

// A handler that takes 5 s to decide on one client: a client already
// watching keeps its stream throughout, and a client of another stream on
// the same port (another sink) joins at once. Then the slow one is admitted.
TEST_F(AuthzTest, AHandlerSleepingFiveSecondsDelaysNoOtherClient) {
  Pipeline slow_srv(server("slow", "io-threads=1"));
  Pipeline free_srv(server("free", "io-threads=1"));
  ASSERT_TRUE(slow_srv.ok() && free_srv.ok());
  AcceptLog log;
  log.slow_subject = "/CN=other";
  g_signal_connect(slow_srv.element("sink"), "accept-client", G_CALLBACK(AcceptLog::on_accept),
                   &log);
  ASSERT_NE(slow_srv.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_NE(free_srv.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstElement *slow_sink = slow_srv.element("sink");
  GstElement *free_sink = free_srv.element("sink");

  Pipeline watcher(client("viewer", "slow"));
  play(watcher);
  ASSERT_TRUE(receives_fresh(watcher, slow_sink, 3, kWait));

  const auto asked_at = std::chrono::steady_clock::now();
  Pipeline slow(client("other", "slow"));
  play(slow);
  ASSERT_TRUE(log.waiter.wait_for([&] { return log.count() == 2; }, kWait));
  // During the 5 s: the watcher gets ~30 fps fresh frames, second after second...
  for (int second = 0; second < 3; ++second) {
    EXPECT_TRUE(receives_fresh(watcher, slow_sink, 20, 1000ms))
        << "the watching client stalled in second " << second;
  }
  // ... and a client of the other stream joins and streams at once.
  const auto join_at = std::chrono::steady_clock::now();
  Pipeline other_stream(client("client", "free"));
  play(other_stream);
  EXPECT_TRUE(receives_fresh(other_stream, free_sink, 3, 1500ms));
  const auto joined_in = std::chrono::steady_clock::now() - join_at;
  EXPECT_LT(std::chrono::steady_clock::now() - asked_at, 5s)
      << "the checks above ran past the handler's sleep: they prove nothing";
  std::printf("another stream's client joined in %.0f ms while the handler slept\n",
              std::chrono::duration<double, std::milli>(joined_in).count());
  // The slow client is admitted once its handler returns TRUE.
  EXPECT_TRUE(receives_fresh(slow, slow_sink, 3, kWait));
  EXPECT_GE(std::chrono::steady_clock::now() - asked_at, 5s);
  EXPECT_EQ(num_clients(slow_sink), 2u);
}

TEST_F(AuthzTest, NoAnswerWithinHandshakeTimeoutRefuses) {
  Pipeline srv(server("cam1", "handshake-timeout=1000000000"));
  ASSERT_TRUE(srv.ok());
  GstElement *sink = srv.element("sink");
  AcceptLog log;
  log.hold = true;
  g_signal_connect(sink, "accept-client", G_CALLBACK(AcceptLog::on_accept), &log);
  RemovedRecorder removed;
  g_signal_connect(sink, "client-removed", G_CALLBACK(RemovedRecorder::on_removed), &removed);
  ASSERT_NE(srv.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);

  Pipeline waiting(client("viewer", "cam1"));
  const auto start = std::chrono::steady_clock::now();
  play(waiting);
  ASSERT_TRUE(log.waiter.wait_for([&] { return log.count() == 1; }, kWait));
  const std::string error = waiting.wait_error(kWait);
  const auto refused_after = std::chrono::steady_clock::now() - start;
  EXPECT_NE(error.find("no authorization decision"), std::string::npos) << error;
  EXPECT_GE(refused_after, 900ms);
  EXPECT_LT(refused_after, 5s);
  // The handler still blocks the signal thread: the late TRUE changes
  // nothing, and client-removed follows it (signals come in order).
  log.release();
  EXPECT_TRUE(removed.waiter.wait_for([&] { return removed.count_status(kStatusForbidden) == 1; },
                                      kWait));
  EXPECT_EQ(num_clients(sink), 0u);
}

}  // namespace
}  // namespace tlsframe::test
