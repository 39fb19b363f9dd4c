// Connection churn against tlsframesink: N connect / handshake / receive /
// disconnect cycles, then the server's open file descriptors and threads must
// be back where they started and its memory (RSS) within a bound.
//
// The server is a tlsframesink pipeline in this process (raw GRAY8 frames of
// 64000 bytes at 100 fps, so every client is mid-frame most of the time).
// Workers run the cycles, mixing how a client leaves:
//   clean     TLS close_notify after one whole buffer;
//   reset     SO_LINGER 0 (TCP RST) in the middle of a buffer;
//   handshake RST in the middle of the TLS handshake (half a ClientHello);
//   kill      a child process (this program, --child) SIGKILLed mid-frame.
// Baseline: after a warm-up of cycles, once the server has no client. End:
// after all cycles, once the server has no client again (bounded wait).
//
//   churn [--cycles N] [--workers W] [--kill-every K] [--rss-slack-kb KB]
// Exit status 0 when fds and threads are equal and RSS grew less than the
// slack; prints one line of figures either way.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gst/gst.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/raw_tls.h"
#include "core/certgen.h"
#include "core/wire_format.h"

extern char **environ;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kIoTimeout = 5s;  // bound for every blocking socket operation

size_t count_dir(const std::string &path) {
  size_t n = 0;
  if (DIR *d = opendir(path.c_str())) {
    while (struct dirent *e = readdir(d)) {
      if (e->d_name[0] != '.') n++;
    }
    closedir(d);
  }
  return n;
}

// Threads of this process, not counting GLib's shared pool workers ("pool-*"):
// GLib starts and retires those on its own schedule (idle ones exit after a
// while), so they are listed in the report but not compared.
size_t own_thread_count() {
  size_t n = 0;
  if (DIR *d = opendir("/proc/self/task")) {
    while (struct dirent *e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/comm");
      std::string name;
      std::getline(in, name);
      if (name.rfind("pool-", 0) != 0) n++;
    }
    closedir(d);
  }
  return n;
}

// Names of this process's threads, for the report.
std::string thread_names() {
  std::string out;
  if (DIR *d = opendir("/proc/self/task")) {
    while (struct dirent *e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/comm");
      std::string name;
      std::getline(in, name);
      out += (out.empty() ? "" : ",") + name;
    }
    closedir(d);
  }
  return out;
}

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// connect_tcp (tests/common) with every later blocking call bounded by kIoTimeout.
int tcp_connect(int port) {
  int fd = tlsframe::test::connect_tcp(port);
  if (fd >= 0) tlsframe::test::set_io_timeout(fd, kIoTimeout);
  return fd;
}

void close_with_reset(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

// A verifying TLS client on one socket (blocking, bounded by the socket timeouts).
class Client {
 public:
  explicit Client(SSL_CTX *ctx) : ctx_(ctx) {}
  bool connect(int port) {
    tlsframe::test::RawTlsOptions o;
    o.shared_ctx = ctx_;
    o.verify_name = "localhost";
    o.io_timeout = kIoTimeout;
    return tls_.connect(port, o);
  }
  // Reads messages until the first byte of a buffer's data arrived (partial=true)
  // or until a whole buffer arrived (partial=false).
  bool read_buffer(bool partial) {
    std::vector<uint8_t> acc;
    uint8_t chunk[16384];
    for (;;) {
      tlsframe::wire::Header h;
      auto r = tlsframe::wire::parse_header(acc.data(), acc.size(), 1u << 24, h);
      if (r.status == tlsframe::wire::DecodeStatus::kError) return false;
      if (r.status == tlsframe::wire::DecodeStatus::kMessage) {
        size_t total = tlsframe::wire::kHeaderSize + h.payload_size;
        if (h.type == tlsframe::wire::MessageType::kBuffer) {
          size_t data_start = tlsframe::wire::kHeaderSize + tlsframe::wire::kBufferMetaSize;
          if (partial && acc.size() > data_start && acc.size() < total) return true;
          if (!partial && acc.size() >= total) return true;
        } else if (h.type != tlsframe::wire::MessageType::kCaps) {
          return false;  // EOS or ERROR: not what a churn cycle expects
        }
        if (acc.size() >= total && h.type == tlsframe::wire::MessageType::kCaps) {
          acc.erase(acc.begin(), acc.begin() + static_cast<long>(total));
          continue;
        }
      }
      // Small reads when partial, so the read stops inside the buffer.
      int want = partial ? 1024 : static_cast<int>(sizeof chunk);
      int n = SSL_read(tls_.ssl(), chunk, want);
      if (n <= 0) return false;
      acc.insert(acc.end(), chunk, chunk + n);
    }
  }
  void close_clean() { tls_.close_clean(); }  // close_notify; the server then sees EOF
  void close_reset() { tls_.close_reset(); }

 private:
  SSL_CTX *ctx_;
  tlsframe::test::RawTlsClient tls_;
};

SSL_CTX *client_ctx(const std::string &ca_file) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  return ctx;
}

// --child PORT CA: connect, read into a buffer, tell the parent on fd 3, then
// keep reading until killed (or 10 s pass).
int child_main(int port, const std::string &ca_file) {
  alarm(10);
  SSL_CTX *ctx = client_ctx(ca_file);
  Client c(ctx);
  if (!c.connect(port) || !c.read_buffer(true)) return 2;
  char x = 'x';
  if (::write(3, &x, 1) != 1) return 3;
  c.read_buffer(false);
  for (;;) pause();
}

struct Counts {
  std::atomic<uint64_t> clean{0}, reset{0}, handshake{0}, killed{0}, failed{0};
};

// kill: spawn a child client, wait until it is mid-frame, SIGKILL it.
bool kill_cycle(int port, const std::string &ca_file) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return false;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 3);
  std::string port_s = std::to_string(port);
  std::string exe = "/proc/self/exe";
  char *argv[] = {exe.data(), const_cast<char *>("--child"), port_s.data(),
                  const_cast<char *>(ca_file.c_str()), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  bool ok = false;
  if (rc == 0) {
    pollfd pfd{pipefd[0], POLLIN, 0};
    char x;
    ok = ::poll(&pfd, 1, 10000) == 1 && ::read(pipefd[0], &x, 1) == 1;
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  ::close(pipefd[0]);
  return ok;
}

// Half a ClientHello, then RST: the server is left mid-handshake.
bool handshake_cycle(int port) {
  int fd = tcp_connect(port);
  if (fd < 0) return false;
  const uint8_t partial_hello[] = {0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xfc, 0x03};
  bool ok = ::send(fd, partial_hello, sizeof partial_hello, MSG_NOSIGNAL) ==
            static_cast<ssize_t>(sizeof partial_hello);
  close_with_reset(fd);
  return ok;
}

void run_cycles(int port, const std::string &ca_file, SSL_CTX *ctx, uint64_t first, uint64_t count,
                uint64_t stride, uint64_t kill_every, Counts &counts) {
  for (uint64_t i = first; i < count; i += stride) {
    bool ok;
    if (kill_every && i % kill_every == kill_every - 1) {
      ok = kill_cycle(port, ca_file);
      if (ok) counts.killed++;
    } else if (i % 10 == 3) {
      ok = handshake_cycle(port);
      if (ok) counts.handshake++;
    } else if (i % 10 < 3) {
      Client c(ctx);
      ok = c.connect(port) && c.read_buffer(true);
      if (ok) counts.reset++;
      c.close_reset();
    } else {
      Client c(ctx);
      ok = c.connect(port) && c.read_buffer(false);
      if (ok) counts.clean++;
      c.close_clean();
    }
    if (!ok) counts.failed++;
  }
}

guint num_clients(GstElement *sink) {
  guint n = 0;
  g_object_get(sink, "num-clients", &n, nullptr);
  return n;
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

// Waits (bounded) until the server has no client and fds/threads stop changing.
void settle(GstElement *sink, size_t &fds, size_t &threads) {
  auto deadline = Clock::now() + 10s;
  size_t last_fds = 0, last_threads = 0;
  int stable = 0;
  while (Clock::now() < deadline && stable < 5) {
    fds = count_dir("/proc/self/fd");
    threads = own_thread_count();
    bool same = fds == last_fds && threads == last_threads && num_clients(sink) == 0;
    stable = same ? stable + 1 : 0;
    last_fds = fds;
    last_threads = threads;
    std::this_thread::sleep_for(100ms);  // sampling interval of a bounded poll, not a sync
  }
}

}  // namespace

int main(int argc, char **argv) {
  if (argc == 4 && std::strcmp(argv[1], "--child") == 0) {
    return child_main(std::atoi(argv[2]), argv[3]);
  }
  uint64_t cycles = 5000, workers = 4, kill_every = 50;
  long rss_slack_kb = 16 * 1024;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--cycles") {
      cycles = v;
    } else if (a == "--workers") {
      workers = std::max<uint64_t>(1, v);
    } else if (a == "--kill-every") {
      kill_every = v;
    } else if (a == "--rss-slack-kb") {
      rss_slack_kb = static_cast<long>(v);
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  gst_init(&argc, &argv);

  // Certificates made now, in a temporary directory removed at exit.
  std::string dir = (std::filesystem::temp_directory_path() / "tlsframe-churn-XXXXXX").string();
  if (!::mkdtemp(dir.data())) return 2;
  tlsframe::certgen::CertSpec ca_spec;
  ca_spec.common_name = "churn CA";
  ca_spec.usage = tlsframe::certgen::Usage::kCa;
  auto ca = tlsframe::certgen::make_self_signed(ca_spec);
  tlsframe::certgen::CertSpec srv_spec;
  srv_spec.common_name = "localhost";
  srv_spec.dns_names = {"localhost"};
  auto srv = ca ? tlsframe::certgen::issue(srv_spec, *ca) : ca;
  if (!ca || !srv) return 2;
  const std::string ca_file = dir + "/ca.pem", cert = dir + "/server.pem",
                    key = dir + "/server.key";
  tlsframe::certgen::write_file(ca_file, ca->cert_pem, false, true);
  tlsframe::certgen::write_file(cert, srv->cert_pem, false, true);
  tlsframe::certgen::write_file(key, srv->key_pem, true, true);

  GError *err = nullptr;
  std::string desc =
      "videotestsrc is-live=true pattern=black ! "
      "video/x-raw,format=GRAY8,width=320,height=200,framerate=100/1 ! "
      "tlsframesink name=sink host=127.0.0.1 port=0 handshake-timeout=2000000000 cert-file=" +
      cert + " key-file=" + key;
  GstElement *pipeline = gst_parse_launch(desc.c_str(), &err);
  if (!pipeline || err) {
    std::fprintf(stderr, "pipeline: %s\n", err ? err->message : "?");
    return 2;
  }
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  gst_element_get_state(pipeline, nullptr, nullptr, 10 * GST_SECOND);
  int port = 0;
  g_object_get(sink, "current-port", &port, nullptr);
  if (port <= 0) {
    std::fprintf(stderr, "the server did not start\n");
    return 2;
  }
  SSL_CTX *ctx = client_ctx(ca_file);

  auto run = [&](uint64_t n, Counts &counts) {
    std::vector<std::thread> threads;
    for (uint64_t w = 0; w < workers; ++w) {
      threads.emplace_back(
          [&, w] { run_cycles(port, ca_file, ctx, w, n, workers, kill_every, counts); });
    }
    for (auto &t : threads) t.join();
  };

  Counts warm;
  run(std::min<uint64_t>(200, cycles), warm);  // OpenSSL, GLib and malloc caches fill up
  size_t fds0 = 0, threads0 = 0;
  settle(sink, fds0, threads0);
  long rss0 = rss_kb();
  const std::string names0 = thread_names();
  guint64 total0 = sink_stat(sink, "clients-total"), hs0 = sink_stat(sink, "handshake-failures");

  Counts counts;
  auto t0 = Clock::now();
  run(cycles, counts);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  size_t fds1 = 0, threads1 = 0;
  settle(sink, fds1, threads1);
  long rss1 = rss_kb();
  const std::string names1 = thread_names();
  guint64 total = sink_stat(sink, "clients-total") - total0;
  guint64 hs = sink_stat(sink, "handshake-failures") - hs0;

  bool ok = fds1 == fds0 && threads1 == threads0 && rss1 - rss0 < rss_slack_kb &&
            counts.failed == 0 && num_clients(sink) == 0;
  std::printf(
      "churn: %llu cycles in %.1f s (%llu workers): clean %llu, reset mid-frame %llu, "
      "reset mid-handshake %llu, kill -9 mid-frame %llu, failed %llu; server: clients-total %llu, "
      "handshake-failures %llu, num-clients %u; fds %zu -> %zu, threads (without GLib pool) %zu -> "
      "%zu, "
      "RSS %ld -> %ld kB (%+ld kB, limit %ld) => %s\n",
      (unsigned long long)cycles, secs, (unsigned long long)workers,
      (unsigned long long)counts.clean.load(), (unsigned long long)counts.reset.load(),
      (unsigned long long)counts.handshake.load(), (unsigned long long)counts.killed.load(),
      (unsigned long long)counts.failed.load(), (unsigned long long)total, (unsigned long long)hs,
      num_clients(sink), fds0, fds1, threads0, threads1, rss0, rss1, rss1 - rss0, rss_slack_kb,
      ok ? "PASS" : "FAIL");
  std::printf("threads before: %s\nthreads after:  %s\n", names0.c_str(), names1.c_str());

  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  SSL_CTX_free(ctx);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return ok ? 0 : 1;
}
