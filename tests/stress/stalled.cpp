// Clients that never read, against a running tlsframesink (issue 14, item 3):
// N raw TLS clients complete the handshake and then never read; K healthy
// clients read every message and measure their frame rate and the latency
// from the server's send time (same host, same clock). Once a second it
// prints the server's kernel send queue (sum of tx_queue over its sockets on
// --port, from /proc/net/tcp), the host's TCP memory (/proc/net/sockstat),
// the server's RSS (/proc/PID/status) and the healthy clients' figures.
//
//   stalled --port P --server-pid PID [--stalled N] [--healthy K] [--seconds S]
//
// Run by tests/stress/stalled.sh, which starts the server. Not a pass/fail
// test: it prints figures (the pass/fail version is the core test
// StalledClientsHoldABoundedSendQueueAndAreDroppedUnderTheDefaults).
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/raw_tls.h"
#include "core/wire_format.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

uint64_t realtime_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Sum of tx_queue (bytes) and count of sockets whose local port is `port`.
void send_queue(int port, uint64_t *total, uint64_t *max_one, int *sockets) {
  *total = *max_one = 0;
  *sockets = 0;
  FILE *f = std::fopen("/proc/net/tcp", "r");
  if (!f) return;
  char line[512];
  for (int i = 0; i < 1000000 && std::fgets(line, sizeof line, f); ++i) {
    unsigned lip = 0, lport = 0, rip = 0, rport = 0, st = 0;
    unsigned long tx = 0, rx = 0;
    if (std::sscanf(line, " %*d: %8X:%4X %8X:%4X %2X %8lX:%8lX", &lip, &lport, &rip, &rport, &st,
                    &tx, &rx) != 7)
      continue;
    if (static_cast<int>(lport) != port || rport == 0) continue;
    *total += tx;
    *max_one = std::max<uint64_t>(*max_one, tx);
    ++*sockets;
  }
  std::fclose(f);
}

// "TCP: inuse .. orphan .. tw .. alloc .. mem PAGES" -> bytes.
uint64_t tcp_mem_bytes() {
  FILE *f = std::fopen("/proc/net/sockstat", "r");
  if (!f) return 0;
  char line[256];
  uint64_t pages = 0;
  while (std::fgets(line, sizeof line, f)) {
    const char *m = std::strstr(line, "TCP:");
    const char *mem = m ? std::strstr(m, " mem ") : nullptr;
    if (mem) pages = std::strtoull(mem + 5, nullptr, 10);
  }
  std::fclose(f);
  return pages * 4096;
}

uint64_t rss_kb(int pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/status";
  FILE *f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  char line[256];
  uint64_t kb = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) kb = std::strtoull(line + 6, nullptr, 10);
  }
  std::fclose(f);
  return kb;
}

struct Healthy {
  std::mutex mutex;  // protects the fields below
  uint64_t frames = 0;
  std::vector<double> latency_ms;  // since the last report
  bool failed = false;
};

void run_healthy(int port, Healthy *h, std::atomic<bool> *stop) {
  tlsframe::test::RawTlsClient c;
  if (!c.connect(port)) {
    std::lock_guard<std::mutex> lock(h->mutex);
    h->failed = true;
    return;
  }
  timeval tv{1, 0};
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  tlsframe::wire::MessageReader reader(tlsframe::wire::kDefaultMaxPayload);
  while (!stop->load()) {
    tlsframe::wire::MessageReader::Space space = reader.prepare();
    size_t n = 0;
    if (space.size == 0 || SSL_read_ex(c.ssl(), space.data, space.size, &n) != 1) {
      int err = SSL_get_error(c.ssl(), 0);
      if (err == SSL_ERROR_WANT_READ || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      std::lock_guard<std::mutex> lock(h->mutex);
      h->failed = true;
      return;
    }
    tlsframe::wire::DecodeResult r = reader.commit(n);
    if (r.status == tlsframe::wire::DecodeStatus::kError) {
      std::lock_guard<std::mutex> lock(h->mutex);
      h->failed = true;
      return;
    }
    if (r.status != tlsframe::wire::DecodeStatus::kMessage) continue;
    auto msg = reader.take();
    tlsframe::wire::MessageView v;
    if (tlsframe::wire::decode(msg->data(), msg->size(), tlsframe::wire::kDefaultMaxPayload, v)
            .status != tlsframe::wire::DecodeStatus::kMessage)
      continue;
    if (v.type != tlsframe::wire::MessageType::kBuffer) continue;
    const double ms = (static_cast<double>(realtime_ns()) - v.meta.send_time_ns) / 1e6;
    std::lock_guard<std::mutex> lock(h->mutex);
    h->frames++;
    h->latency_ms.push_back(ms);
  }
}

int arg_int(int argc, char **argv, const char *name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char **argv) {
  const int port = arg_int(argc, argv, "--port", 0);
  const int pid = arg_int(argc, argv, "--server-pid", 0);
  const int n_stalled = arg_int(argc, argv, "--stalled", 300);
  const int n_healthy = arg_int(argc, argv, "--healthy", 3);
  const int seconds = arg_int(argc, argv, "--seconds", 10);
  if (port <= 0 || pid <= 0) {
    std::fprintf(stderr,
                 "usage: stalled --port P --server-pid PID [--stalled N] [--healthy K] "
                 "[--seconds S]\n");
    return 2;
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < static_cast<rlim_t>(n_stalled + 64)) {
    std::fprintf(stderr, "stalled: open-file limit %lu too low for %d clients\n",
                 static_cast<unsigned long>(rl.rlim_cur), n_stalled);
    return 2;
  }
  const uint64_t rss0 = rss_kb(pid), tcpmem0 = tcp_mem_bytes();
  std::printf("baseline: server RSS %llu kB, TCP mem %llu kB\n",
              static_cast<unsigned long long>(rss0),
              static_cast<unsigned long long>(tcpmem0 >> 10));

  std::vector<Healthy> healthy(static_cast<size_t>(n_healthy));
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (auto &h : healthy) readers.emplace_back(run_healthy, port, &h, &stop);

  std::vector<std::unique_ptr<tlsframe::test::RawTlsClient>> stalled;
  for (int i = 0; i < n_stalled; ++i) {
    auto c = std::make_unique<tlsframe::test::RawTlsClient>();
    if (!c->connect(port)) {
      std::fprintf(stderr, "stalled client %d: %s\n", i, c->error().c_str());
      break;
    }
    stalled.push_back(std::move(c));
  }
  std::printf("%zu stalled clients connected (never reading), %d healthy reading\n", stalled.size(),
              n_healthy);
  std::printf("%4s %12s %10s %8s %12s %12s %10s %9s %9s %9s\n", "t_s", "sendq_kB", "max1_kB",
              "sockets", "tcpmem_kB", "d_rss_kB", "fps/heal", "lat_p50", "lat_p99", "lat_max");
  for (auto &h : healthy) {  // count from now on: the connecting phase is not measured
    std::lock_guard<std::mutex> lock(h.mutex);
    h.frames = 0;
    h.latency_ms.clear();
  }
  const auto t0 = Clock::now();
  uint64_t peak_sendq = 0, peak_tcpmem = 0, peak_rss = 0;
  bool any_failed = false;
  for (int s = 1; s <= seconds; ++s) {
    std::this_thread::sleep_until(t0 + std::chrono::seconds(s));  // the sampling period
    uint64_t total = 0, max_one = 0;
    int sockets = 0;
    send_queue(port, &total, &max_one, &sockets);
    const uint64_t mem = tcp_mem_bytes(), rss = rss_kb(pid);
    uint64_t frames = 0;
    std::vector<double> lat;
    for (auto &h : healthy) {
      std::lock_guard<std::mutex> lock(h.mutex);
      frames += h.frames;
      h.frames = 0;
      lat.insert(lat.end(), h.latency_ms.begin(), h.latency_ms.end());
      h.latency_ms.clear();
      any_failed = any_failed || h.failed;
    }
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
      return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))];
    };
    peak_sendq = std::max(peak_sendq, total);
    peak_tcpmem = std::max(peak_tcpmem, mem);
    peak_rss = std::max(peak_rss, rss);
    std::printf("%4d %12llu %10llu %8d %12llu %12lld %10.1f %9.1f %9.1f %9.1f\n", s,
                static_cast<unsigned long long>(total >> 10),
                static_cast<unsigned long long>(max_one >> 10), sockets,
                static_cast<unsigned long long>(mem >> 10),
                static_cast<long long>(rss) - static_cast<long long>(rss0),
                n_healthy ? static_cast<double>(frames) / n_healthy : 0.0, pct(0.5), pct(0.99),
                lat.empty() ? 0.0 : lat.back());
    std::fflush(stdout);
  }
  std::printf(
      "peak: server send queue %llu kB, TCP mem %llu kB (+%lld kB), server RSS +%lld kB%s\n",
      static_cast<unsigned long long>(peak_sendq >> 10),
      static_cast<unsigned long long>(peak_tcpmem >> 10),
      static_cast<long long>(peak_tcpmem >> 10) - static_cast<long long>(tcpmem0 >> 10),
      static_cast<long long>(peak_rss) - static_cast<long long>(rss0),
      any_failed ? "; a healthy client FAILED" : "");
  stop = true;
  for (auto &t : readers) t.join();
  return any_failed ? 1 : 0;
}
