// Core server tests (fixture: server_fixture.h). Dead peers: a client whose
// host vanished without a FIN or RST, on a silent stream (nothing written to
// it), is removed with status timeout about `timeout` later, by TCP keepalive
// and TCP_USER_TIMEOUT (core/keepalive.h); other clients are unaffected.
//
// Loopback always acknowledges, so the vanishing peer lives in a network
// namespace the test makes, joined to this one by a veth pair; taking the
// namespace's end down makes the peer silent: no FIN, no RST, no ACK. Needs
// root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and `ip`; skipped with a message
// otherwise. The namespace and the pair are removed on every path.
#include <fcntl.h>
#include <openssl/err.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>

#include "core/keepalive.h"
#include "core/server_fixture.h"
#include "core/wire_v2.h"

namespace tlsframe {
namespace {

// ===========================================================================
// The settings derived from `timeout` (no network).

TEST(Keepalive, SettingsEndADeadPeerAboutTheTimeoutAfterItsLastPacket) {
  const KeepaliveSettings k = keepalive_for_timeout(std::chrono::seconds(5));  // the default
  ASSERT_TRUE(k.enabled);
  EXPECT_EQ(k.user_timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(k.idle, std::chrono::seconds(2));
  EXPECT_EQ(k.interval, std::chrono::seconds(1));
  EXPECT_EQ(k.idle + k.count * k.interval, std::chrono::seconds(5))
      << "probes alone (a kernel without TCP_USER_TIMEOUT) end it at the timeout too";
}

TEST(Keepalive, ShortLongAndZeroTimeouts) {
  KeepaliveSettings k = keepalive_for_timeout(std::chrono::milliseconds(300));
  ASSERT_TRUE(k.enabled);
  EXPECT_EQ(k.idle, std::chrono::seconds(1)) << "the kernel's unit is a whole second";
  EXPECT_EQ(k.interval, std::chrono::seconds(1));
  EXPECT_GE(k.count, 1);
  EXPECT_EQ(k.user_timeout, std::chrono::milliseconds(300));

  k = keepalive_for_timeout(std::chrono::hours(24 * 365));
  ASSERT_TRUE(k.enabled);
  EXPECT_LE(k.idle.count(), 32767);
  EXPECT_LE(k.interval.count(), 32767);
  EXPECT_LE(k.count, 127);

  EXPECT_FALSE(keepalive_for_timeout(std::chrono::nanoseconds(0)).enabled) << "0 = no limit";
}

// ===========================================================================
// A real dead peer.

// Runs a shell command; true on exit status 0. Output goes to *out when given.
bool run(const std::string &cmd, std::string *out = nullptr) {
  FILE *p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return false;
  std::string text;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) text += buf;
  const int status = ::pclose(p);
  if (out) *out = text;
  return status == 0;
}

// A network namespace with one end of a veth pair (10.X.Y.2/30); the other
// end (10.X.Y.1/30) is in this namespace. Removed on destruction.
class PeerNamespace {
 public:
  PeerNamespace() {
    remove_stale();
    const unsigned pid = static_cast<unsigned>(::getpid());
    ns_ = "tfdead" + std::to_string(pid);
    host_if_ = "tfd" + std::to_string(pid % 100000) + "h";
    peer_if_ = "tfd" + std::to_string(pid % 100000) + "p";
    const std::string net =
        "10." + std::to_string(200 + pid % 50) + "." + std::to_string((pid / 50) % 250) + ".";
    host_ip_ = net + "1";
    peer_ip_ = net + "2";
    const std::vector<std::string> steps = {
        "ip netns add " + ns_,
        "ip link add " + host_if_ + " type veth peer name " + peer_if_,
        "ip link set " + peer_if_ + " netns " + ns_,
        "ip addr add " + host_ip_ + "/30 dev " + host_if_,
        "ip link set " + host_if_ + " up",
        "ip -n " + ns_ + " addr add " + peer_ip_ + "/30 dev " + peer_if_,
        "ip -n " + ns_ + " link set " + peer_if_ + " up",
        "ip -n " + ns_ + " link set lo up",
    };
    for (const auto &s : steps) {
      std::string out;
      if (!run(s, &out)) {
        error_ = "'" + s + "' failed: " + out;
        return;
      }
    }
    ok_ = true;
  }
  // A test process that crashed (a sanitizer abort, SIGKILL) ran no
  // destructor: its namespace and pair would stay. Removes those of test
  // processes that no longer exist.
  static void remove_stale() {
    std::string list;
    if (!run("ip netns list", &list)) return;
    size_t pos = 0;
    for (int i = 0; i < 1000 && (pos = list.find("tfdead", pos)) != std::string::npos; ++i) {
      pos += 6;
      const unsigned long pid = std::strtoul(list.c_str() + pos, nullptr, 10);
      if (pid == 0) continue;
      if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // still running
      run("ip netns del tfdead" + std::to_string(pid));
      run("ip link del tfd" + std::to_string(pid % 100000) + "h");
    }
  }

  ~PeerNamespace() {
    // The namespace's end goes with the namespace, and its peer with it; the
    // explicit delete covers a set-up that failed half way.
    run("ip netns del " + ns_);
    run("ip link del " + host_if_);
  }
  PeerNamespace(const PeerNamespace &) = delete;
  PeerNamespace &operator=(const PeerNamespace &) = delete;

  bool ok() const { return ok_; }
  const std::string &error() const { return error_; }
  const std::string &host_ip() const { return host_ip_; }

  // A TCP socket made in the namespace, connected to host_ip():port (-1 on failure).
  int connect_from_inside(uint16_t port, std::string *error) {
    int fd = -1;
    std::thread t([&] {  // setns() changes the calling thread only
      const int ns_fd = ::open(("/var/run/netns/" + ns_).c_str(), O_RDONLY | O_CLOEXEC);
      if (ns_fd < 0 || ::setns(ns_fd, CLONE_NEWNET) != 0) {
        *error = std::string("setns: ") + std::strerror(errno);
        if (ns_fd >= 0) ::close(ns_fd);
        return;
      }
      ::close(ns_fd);
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      test::set_io_timeout(fd, std::chrono::seconds(5));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      ::inet_pton(AF_INET, host_ip_.c_str(), &a.sin_addr);
      if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        *error = std::string("connect: ") + std::strerror(errno);
        ::close(fd);
        fd = -1;
      }
    });
    t.join();
    return fd;
  }

  // The peer vanishes: its end of the pair goes down. Its sockets stay open,
  // so nothing (no FIN, no RST, no ACK) reaches this namespace from now on.
  bool vanish(std::string *error) {
    return run("ip -n " + ns_ + " link set " + peer_if_ + " down", error);
  }

 private:
  bool ok_ = false;
  std::string error_;
  std::string ns_, host_if_, peer_if_, host_ip_, peer_ip_;
};

// A TLS client over a socket from PeerNamespace: version 1 (no ALPN) or 2
// (ALPN tlsframe/2 and a HELLO for the default stream). No certificate check:
// a test peer; the server's side is what is tested.
class NsTlsClient {
 public:
  ~NsTlsClient() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool start(int fd, bool v2, std::string *error) {
    fd_ = fd;
    ctx_ = SSL_CTX_new(TLS_client_method());
    ssl_ = ctx_ ? SSL_new(ctx_) : nullptr;
    if (!ssl_) return fail("SSL_new", error);
    if (v2) {
      std::string alpn = std::string(1, static_cast<char>(wire::kAlpnV2.size())) +
                         std::string(wire::kAlpnV2);
      SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char *>(alpn.data()),
                          static_cast<unsigned>(alpn.size()));
    }
    SSL_set_fd(ssl_, fd_);
    if (SSL_connect(ssl_) != 1) return fail("SSL_connect", error);
    if (v2) {
      const std::vector<uint8_t> hello = wire::encode_hello({{"stream", ""}});
      if (SSL_write(ssl_, hello.data(), static_cast<int>(hello.size())) <= 0) {
        return fail("SSL_write(HELLO)", error);
      }
    }
    return true;
  }
  // Reads what the server sent first (v1: the caps; v2: the WELCOME), so all
  // of it is acknowledged before the peer vanishes.
  bool read_some(std::string *error) {
    uint8_t buf[4096];
    if (SSL_read(ssl_, buf, sizeof buf) > 0) return true;
    return fail("SSL_read", error);
  }

 private:
  bool fail(const char *what, std::string *error) {
    char text[256] = "";
    ERR_error_string_n(ERR_get_error(), text, sizeof text);
    *error = std::string(what) + ": " + text;
    return false;
  }
  int fd_ = -1;
  SSL_CTX *ctx_ = nullptr;
  SSL *ssl_ = nullptr;
};

TEST_F(ServerReceiverTest, APeerGoneWithoutFinOnASilentStreamIsRemovedAtTheTimeout) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace and a veth pair";
  std::string why;
  if (!run("ip -V", &why)) GTEST_SKIP() << "no `ip` command: " << why;
  PeerNamespace ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot make a network namespace with a veth pair: " << ns.error();

  ServerConfig cfg = server_config();
  cfg.host = "0.0.0.0";  // loopback and the veth address
  const auto timeout = std::chrono::seconds(3);
  cfg.client_timeout = timeout;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);  // then nothing: a silent stream

  uint64_t good_id = 0;
  auto good = connect_receiver(*server, &good_id);  // on loopback
  ASSERT_TRUE(good);
  ASSERT_TRUE(next_caps(*good, kCaps));

  // One peer of each protocol version in the namespace.
  NsTlsClient peers[2];
  for (int v = 0; v < 2; ++v) {
    const size_t before = events_.snapshot().added.size();
    std::string err;
    const int fd = ns.connect_from_inside(server->port(), &err);
    ASSERT_GE(fd, 0) << err;
    ASSERT_TRUE(peers[v].start(fd, v == 1, &err)) << err;
    ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.added.size() > before; }))
        << "the namespace's version " << v + 1 << " client was not added";
    ASSERT_TRUE(peers[v].read_some(&err)) << err;
  }
  ASSERT_EQ(events_.snapshot().added.size(), 3u);

  const auto vanished_at = Clock::now();
  ASSERT_TRUE(ns.vanish(&why)) << why;
  // `timeout` after the peers' last packet (before vanished_at), plus margin
  // for the keepalive timer's granularity (a second) and scheduling.
  const auto margin = std::chrono::seconds(2);
  const bool removed = events_.wait(
      [](const EventLog &l) { return l.removed.size() >= 2; }, timeout + margin);
  const auto took = Clock::now() - vanished_at;
  ASSERT_TRUE(removed) << "dead peers not removed within the timeout + "
                       << std::chrono::duration_cast<std::chrono::seconds>(margin).count() << " s";
  const EventLog l = events_.snapshot();
  for (const auto &r : l.removed) {
    EXPECT_NE(r.info.id, good_id) << "the loopback client was removed";
    EXPECT_EQ(r.reason, RemoveReason::kTimeout) << r.error;
    EXPECT_NE(r.error.find("stopped answering"), std::string::npos) << r.error;
  }
  std::printf("dead peers removed %lld ms after they vanished (timeout %lld s)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
              static_cast<long long>(timeout.count()));
  EXPECT_GE(took, timeout - std::chrono::seconds(1)) << "removed before the timeout";

  // The loopback client is unaffected: still connected, still receiving.
  EXPECT_EQ(server->num_clients(), 1u);
  expect_still_receives(*server, *good, 0);
}

// A live peer on a silent stream is not mistaken for a dead one: it answers
// the keepalive probes, so it stays well past the timeout.
TEST_F(ServerReceiverTest, ALivePeerOnASilentStreamStaysPastTheTimeout) {
  ServerConfig cfg = server_config();
  cfg.client_timeout = std::chrono::seconds(1);
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  ASSERT_TRUE(next_caps(*r, kCaps));
  // Bounded quiet period: three timeouts with nothing sent.
  EXPECT_FALSE(events_.wait([](const EventLog &l) { return !l.removed.empty(); },
                            std::chrono::seconds(3)))
      << "a live, silent client was removed";
  expect_still_receives(*server, *r, 0);
}

}  // namespace
}  // namespace tlsframe
