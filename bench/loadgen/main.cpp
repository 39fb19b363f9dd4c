// tlsframe-loadgen: opens many client connections to a tlsframesink (or, with
// --raw, to any server that streams bytes: tcpserversink, stunnel), counts
// frames and bytes per client, and reports throughput, per-client fps, time
// to a first frame and latency. See bench/README.md.
#include <getopt.h>
#include <netdb.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "client.h"
#include "core/tls_context.h"
#include "core/wire_v2.h"

using namespace tlsframe;
using namespace tlsframe::loadgen;

namespace {

void usage(FILE *out) {
  std::fputs(
      "usage: tlsframe-loadgen [options] HOST:PORT\n"
      "  -c, --clients N          connections (default 1)\n"
      "  -t, --threads N          worker threads (default 2)\n"
      "      --ca-file FILE       CAs trusted for the server (default: system store)\n"
      "      --server-name NAME   name checked in the server certificate (default: HOST)\n"
      "      --cert-file FILE, --key-file FILE   client certificate for mutual TLS\n"
      "      --no-tls             plain TCP (e.g. tcpserversink)\n"
      "      --connect-batch K    at most K clients connecting at a time (opened, no first\n"
      "                           frame yet); default 0 = all at once\n"
      "      --hello              with --no-tls: send one byte after connecting (for servers\n"
      "                           that discard client data, e.g. tcpserversink: see README)\n"
      "      --websocket          connect as a browser does: ALPN http/1.1, the viewer page's\n"
      "                           WebSocket upgrade (Origin https://HOST:PORT, the accept key\n"
      "                           checked), then each buffer as a binary WebSocket message\n"
      "      --path PATH          --websocket: the stream's address (default /watch/, the\n"
      "                           default stream; /watch/NAME for stream NAME)\n"
      "      --stream NAME        protocol version 2: ALPN tlsframe/2, a HELLO asking for\n"
      "                           stream NAME (\"\" = the default stream), WELCOME, then the\n"
      "                           stream; with --websocket: the path /watch/NAME\n"
      "      --rendition LIST     comma list of renditions (or auto); client i asks for\n"
      "                           LIST[i % count] in its HELLO (--websocket: in a\n"
      "                           RENDITION_REQUEST after the upgrade); implies version 2\n"
      "                           (the default stream without --stream). The JSON counts\n"
      "                           the clients on each rendition the server stated\n"
      "      --raw                count bytes, not tlsframe messages (needs --frame-size)\n"
      "      --frame-size BYTES   bytes per frame, to derive frames with --raw\n"
      "  -w, --warmup SECONDS     before measuring, after every client has a first frame\n"
      "                           (default 2)\n"
      "  -d, --duration SECONDS   measured window (default 5)\n"
      "      --expect-fps FPS     stream rate: counts clients at full rate (lag < 2 frames)\n"
      "      --first-frame        stop once every client has a first frame; report times\n"
      "      --first-frame-timeout SECONDS  (default 30)\n"
      "      --retry              reconnect after a failure before the first frame\n"
      "      --rcvbuf BYTES       SO_RCVBUF per connection (default: system)\n"
      "      --json FILE          write the results as JSON\n"
      "Verifies the server certificate and name always (TLS 1.3).\n",
      out);
}

bool split_host_port(const std::string &s, std::string &host, uint16_t &port) {
  std::string p;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    host = s.substr(1, close - 1);
    p = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos) return false;
    host = s.substr(0, colon);
    p = s.substr(colon + 1);
  }
  char *end = nullptr;
  unsigned long v = std::strtoul(p.c_str(), &end, 10);
  if (p.empty() || *end || v == 0 || v > 65535) return false;
  port = static_cast<uint16_t>(v);
  return !host.empty();
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

double pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string json_escape(const std::string &s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) continue;
    o += ch;
  }
  return o;
}

// Waits in steps of 10 ms until pred() or the deadline; bounded by construction.
template <typename Pred>
bool wait_until(double seconds, Pred pred) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace

int main(int argc, char **argv) {
  // A server that closes a connection while we write (e.g. the ClientHello) must count as a
  // failed client, not kill the process: EPIPE instead of SIGPIPE for every socket write.
  std::signal(SIGPIPE, SIG_IGN);
  SharedRun run;
  Options &o = run.opt;
  enum {
    kCa = 256, kName, kCert, kKey, kNoTls, kRaw, kFrameSize, kExpect, kFirst, kFirstTimeout,
    kRetry, kRcvbuf, kJson, kHello, kBatch, kWebSocket, kPath, kStream, kRendition
  };
  static const option longs[] = {
      {"clients", required_argument, nullptr, 'c'},
      {"threads", required_argument, nullptr, 't'},
      {"warmup", required_argument, nullptr, 'w'},
      {"duration", required_argument, nullptr, 'd'},
      {"ca-file", required_argument, nullptr, kCa},
      {"server-name", required_argument, nullptr, kName},
      {"cert-file", required_argument, nullptr, kCert},
      {"key-file", required_argument, nullptr, kKey},
      {"no-tls", no_argument, nullptr, kNoTls},
      {"hello", no_argument, nullptr, kHello},
      {"connect-batch", required_argument, nullptr, kBatch},
      {"raw", no_argument, nullptr, kRaw},
      {"websocket", no_argument, nullptr, kWebSocket},
      {"path", required_argument, nullptr, kPath},
      {"stream", required_argument, nullptr, kStream},
      {"rendition", required_argument, nullptr, kRendition},
      {"frame-size", required_argument, nullptr, kFrameSize},
      {"expect-fps", required_argument, nullptr, kExpect},
      {"first-frame", no_argument, nullptr, kFirst},
      {"first-frame-timeout", required_argument, nullptr, kFirstTimeout},
      {"retry", no_argument, nullptr, kRetry},
      {"rcvbuf", required_argument, nullptr, kRcvbuf},
      {"json", required_argument, nullptr, kJson},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0}};
  bool path_set = false, stream_set = false, rendition_set = false;
  std::string rendition_list;
  int ch;
  while ((ch = getopt_long(argc, argv, "c:t:w:d:h", longs, nullptr)) != -1) {
    switch (ch) {
      case 'c': o.clients = static_cast<unsigned>(std::atoi(optarg)); break;
      case 't': o.threads = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'w': o.warmup_s = std::atof(optarg); break;
      case 'd': o.duration_s = std::atof(optarg); break;
      case kCa: o.ca_file = optarg; break;
      case kName: o.server_name = optarg; break;
      case kCert: o.cert_file = optarg; break;
      case kKey: o.key_file = optarg; break;
      case kNoTls: o.tls = false; break;
      case kHello: o.hello = true; break;
      case kBatch: o.connect_batch = static_cast<unsigned>(std::atoi(optarg)); break;
      case kRaw: o.protocol = Protocol::kRaw; break;
      case kWebSocket: o.websocket = true; break;
      case kPath: o.ws_path = optarg; path_set = true; break;
      case kStream: o.stream = optarg; stream_set = true; break;
      case kRendition: rendition_list = optarg; rendition_set = true; break;
      case kFrameSize: o.frame_size = std::strtoull(optarg, nullptr, 10); break;
      case kExpect: o.expect_fps = std::atof(optarg); break;
      case kFirst: o.until_first_frame = true; break;
      case kFirstTimeout: o.first_frame_timeout_s = std::atof(optarg); break;
      case kRetry: o.retry = true; break;
      case kRcvbuf: o.rcvbuf = static_cast<unsigned>(std::atoi(optarg)); break;
      case kJson: o.json_file = optarg; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (optind != argc - 1 || !split_host_port(argv[optind], o.host, o.port)) {
    usage(stderr);
    return 2;
  }
  if (o.clients == 0 || o.threads == 0 || o.duration_s <= 0) {
    std::fprintf(stderr, "tlsframe-loadgen: --clients, --threads and --duration must be > 0\n");
    return 2;
  }
  if (o.protocol == Protocol::kRaw && o.frame_size == 0) {
    std::fprintf(stderr, "tlsframe-loadgen: --raw needs --frame-size\n");
    return 2;
  }
  if (o.protocol == Protocol::kTlsframe && !o.tls) {
    std::fprintf(stderr, "tlsframe-loadgen: the tlsframe protocol is TLS only; use --raw\n");
    return 2;
  }
  if (o.websocket && (o.protocol == Protocol::kRaw || !o.tls)) {
    std::fprintf(stderr, "tlsframe-loadgen: --websocket is TLS and the tlsframe protocol only\n");
    return 2;
  }
  if (o.ws_path.empty() || o.ws_path[0] != '/' ||
      o.ws_path.find_first_of(" \r\n\t") != std::string::npos) {
    std::fprintf(stderr, "tlsframe-loadgen: --path must start with / and hold no blank\n");
    return 2;
  }
  if (stream_set || rendition_set) {
    if (o.protocol == Protocol::kRaw || !o.tls) {
      std::fprintf(stderr, "tlsframe-loadgen: --stream and --rendition are TLS and the tlsframe "
                           "protocol only\n");
      return 2;
    }
    if (stream_set && !o.stream.empty() && !wire::valid_stream_name(o.stream)) {
      std::fprintf(stderr, "tlsframe-loadgen: --stream %s: not a stream name (1 to 64 of "
                           "A-Z a-z 0-9 . _ -, not starting with .)\n", o.stream.c_str());
      return 2;
    }
    if (rendition_set) {
      std::string item;
      std::istringstream in(rendition_list);
      while (std::getline(in, item, ',')) o.renditions.push_back(item);
      if (!rendition_list.empty() && rendition_list.back() == ',') o.renditions.push_back("");
      for (const auto &r : o.renditions) {
        if (r != wire::kRenditionAuto && !wire::valid_rendition_name(r)) {
          std::fprintf(stderr, "tlsframe-loadgen: --rendition %s: \"%s\" is not a rendition "
                               "name or auto\n", rendition_list.c_str(), r.c_str());
          return 2;
        }
      }
      if (o.renditions.empty()) {
        std::fprintf(stderr, "tlsframe-loadgen: --rendition needs at least one name\n");
        return 2;
      }
    }
    if (o.websocket) {
      if (stream_set && path_set) {
        std::fprintf(stderr, "tlsframe-loadgen: --websocket: give --stream or --path, not both\n");
        return 2;
      }
      if (stream_set) o.ws_path = "/watch/" + o.stream;
    } else {
      o.v2 = true;
    }
  }
  o.ws_host = (o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host) + ":" +
              std::to_string(o.port);
  o.threads = std::min(o.threads, o.clients);

  // One descriptor per connection, plus a few.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < o.clients + 64 && rl.rlim_max > rl.rlim_cur) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, o.clients + 1024);
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  int gai = getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &res);
  if (gai != 0 || !res) {
    std::fprintf(stderr, "tlsframe-loadgen: cannot resolve %s: %s\n", o.host.c_str(),
                 gai_strerror(gai));
    return 1;
  }
  std::memcpy(&run.addr, res->ai_addr, res->ai_addrlen);
  run.addr_len = res->ai_addrlen;
  freeaddrinfo(res);

  tls::ContextPtr ctx;
  if (o.tls) {
    tls::ClientTlsConfig tc;
    tc.ca_file = o.ca_file;
    tc.cert_file = o.cert_file;
    tc.key_file = o.key_file;
    auto r = tls::make_client_context(tc);
    if (!r) {
      std::fprintf(stderr, "tlsframe-loadgen: %s\n", r.error().message.c_str());
      return 1;
    }
    ctx = r.value();
    run.ctx = ctx->native_handle();
    // Receive side efficiency: read ahead into a 64 KiB buffer, so a TLS record
    // costs no extra recv() for its header, and keep the buffer between reads.
    SSL_CTX_set_read_ahead(run.ctx, 1);
    SSL_CTX_set_default_read_buffer_len(run.ctx, 64 * 1024);
    SSL_CTX_clear_mode(run.ctx, SSL_MODE_RELEASE_BUFFERS);
    run.verify_name = o.server_name.empty() ? o.host : o.server_name;
    if (o.websocket) {
      static const unsigned char kHttp11[] = "\x08http/1.1";
      if (SSL_CTX_set_alpn_protos(run.ctx, kHttp11, sizeof kHttp11 - 1) != 0) {
        std::fprintf(stderr, "tlsframe-loadgen: cannot offer ALPN http/1.1\n");
        return 1;
      }
    } else if (o.v2 &&
               SSL_CTX_set_alpn_protos(run.ctx, wire::kAlpnOfferV2, sizeof wire::kAlpnOfferV2) != 0) {
      std::fprintf(stderr, "tlsframe-loadgen: cannot offer ALPN tlsframe/2\n");
      return 1;
    }
  }

  for (unsigned i = 0; i < o.clients; ++i) run.counters.push_back(std::make_unique<ClientCounters>());
  std::vector<std::vector<unsigned>> split(o.threads);
  for (unsigned i = 0; i < o.clients; ++i) split[i % o.threads].push_back(i);
  std::vector<std::unique_ptr<Worker>> workers;
  run.start_ns = steady_ns();
  for (auto &ids : split) workers.push_back(std::make_unique<Worker>(run, ids));
  for (auto &w : workers) w->start();

  const unsigned n = o.clients;
  auto all_failed = [&] { return run.failed.load() >= n; };
  double window = 0, cpu = 0;
  std::vector<uint64_t> f0(n), b0(n), g0(n), f1(n), b1(n), g1(n);
  bool first_ok = true;
  if (o.until_first_frame) {
    first_ok = wait_until(o.first_frame_timeout_s, [&] { return run.done_first.load() >= n; });
  } else {
    // Measure only once every client streams (or failed, or the first-frame
    // timeout passed), then after the warm-up: slow connects don't skew the window.
    first_ok = wait_until(o.first_frame_timeout_s, [&] { return run.done_first.load() >= n; });
    wait_until(o.warmup_s, all_failed);
    auto snap = [&](std::vector<uint64_t> &f, std::vector<uint64_t> &b, std::vector<uint64_t> &g) {
      for (unsigned i = 0; i < n; ++i) {
        f[i] = run.counters[i]->frames.load();
        b[i] = run.counters[i]->bytes.load();
        g[i] = run.counters[i]->seq_gaps.load();
      }
    };
    double c0 = cpu_seconds();
    int64_t t0 = steady_ns();
    snap(f0, b0, g0);
    run.measuring = true;
    std::printf("loadgen: measure-start\n");
    std::fflush(stdout);
    wait_until(o.duration_s, [&] { return all_failed() || run.eos.load() >= n; });
    run.measuring = false;
    snap(f1, b1, g1);
    window = (steady_ns() - t0) / 1e9;
    cpu = cpu_seconds() - c0;
    std::printf("loadgen: measure-end\n");
    std::fflush(stdout);
  }
  run.stop = true;
  for (auto &w : workers) w->join();

  // Results.
  std::vector<double> fps, first;
  uint64_t frames = 0, bytes = 0, gaps = 0;
  unsigned full_rate = 0, streaming = 0, attempts = 0;
  for (unsigned i = 0; i < n; ++i) {
    auto &k = *run.counters[i];
    attempts += k.attempts.load();
    int64_t ff = k.first_frame_ns.load();
    if (ff >= 0) first.push_back(ff / 1e9);
    if (o.until_first_frame) continue;
    uint64_t df = f1[i] - f0[i], dg = g1[i] - g0[i];
    frames += df;
    bytes += b1[i] - b0[i];
    gaps += dg;
    if (window > 0) fps.push_back(df / window);
    if (ff >= 0) streaming++;
    if (o.expect_fps > 0 && ff >= 0 && df + 2 >= o.expect_fps * window && dg == 0) full_rate++;
  }
  std::vector<double> lat;
  std::vector<std::string> errors;
  std::map<std::string, unsigned> renditions;
  unsigned not_as_asked = 0;
  for (auto &w : workers) {
    for (const auto &[name, count] : w->rendition_counts()) renditions[name] += count;
    not_as_asked += w->rendition_mismatches();
    for (uint32_t v : w->latencies_us()) lat.push_back(v / 1000.0);
    for (auto &e : w->errors()) {
      if (errors.size() < 8 && std::find(errors.begin(), errors.end(), e) == errors.end())
        errors.push_back(e);
    }
  }
  std::ostringstream js;
  js.precision(6);
  js << "{\"clients\":" << n << ",\"threads\":" << o.threads
     << ",\"protocol\":\""
     << (o.protocol == Protocol::kRaw ? "raw"
         : o.websocket                ? "websocket"
         : o.v2                       ? "tlsframe/2"
                                      : "tlsframe")
     << "\",\"tls\":" << (o.tls ? "true" : "false") << ",\"failed\":" << run.failed.load()
     << ",\"connect_attempts\":" << attempts;
  if (o.v2 || o.websocket) {
    // Clients per rendition the server last stated (WELCOME, RENDITION); a stream without
    // renditions states none.
    js << ",\"stream\":\"" << json_escape(o.websocket ? o.ws_path : o.stream)
       << "\",\"renditions\":{";
    bool first_item = true;
    for (const auto &[name, count] : renditions) {
      js << (first_item ? "" : ",") << "\"" << json_escape(name) << "\":" << count;
      first_item = false;
    }
    js << "}";
    if (!o.renditions.empty()) js << ",\"rendition_not_as_asked\":" << not_as_asked;
    if (!renditions.empty()) {
      std::string text;
      for (const auto &[name, count] : renditions)
        text += (text.empty() ? "" : ", ") + name + " " + std::to_string(count);
      std::printf("renditions (clients, as the server last stated): %s", text.c_str());
      if (!o.renditions.empty()) std::printf("; %u not as asked", not_as_asked);
      std::printf("\n");
    }
  }
  if (o.until_first_frame) {
    double all = first.size() == n ? pct(first, 1.0) : -1;
    js << ",\"first_frame_all_s\":" << all << ",\"first_frame_p50_s\":" << pct(first, 0.5)
       << ",\"first_frame_p99_s\":" << pct(first, 0.99)
       << ",\"with_first_frame\":" << first.size();
    std::printf("clients %u: %zu got a first frame (%s); p50 %.3f s, p99 %.3f s, all: %s; "
                "%u failed, %u connect attempts\n",
                n, first.size(), first_ok ? "all in time" : "timed out", pct(first, 0.5),
                pct(first, 0.99), all >= 0 ? (std::to_string(all) + " s").c_str() : "no",
                run.failed.load(), attempts);
  } else {
    double mbps = window > 0 ? bytes / window / 1e6 : 0;
    js << ",\"all_streaming_before_window\":" << (first_ok ? "true" : "false")
       << ",\"window_s\":" << window << ",\"frames\":" << frames << ",\"bytes\":" << bytes
       << ",\"mb_per_s\":" << mbps << ",\"fps_min\":" << pct(fps, 0) << ",\"fps_median\":"
       << pct(fps, 0.5) << ",\"fps_max\":" << pct(fps, 1) << ",\"seq_gaps\":" << gaps
       << ",\"streaming\":" << streaming << ",\"full_rate\":" << full_rate
       << ",\"latency_ms_p50\":" << pct(lat, 0.5) << ",\"latency_ms_p99\":" << pct(lat, 0.99)
       << ",\"latency_ms_max\":" << pct(lat, 1) << ",\"latency_samples\":" << lat.size()
       << ",\"loadgen_cpu_s\":" << cpu << ",\"loadgen_cpu_pct\":"
       << (window > 0 ? 100 * cpu / window : 0);
    std::printf("clients %u (%u streaming, %u failed): %.1f MB/s, %.0f frames/s total; per client "
                "fps min %.1f / median %.1f / max %.1f; skipped by server %" PRIu64 "\n",
                n, streaming, run.failed.load(), mbps, window > 0 ? frames / window : 0,
                pct(fps, 0), pct(fps, 0.5), pct(fps, 1), gaps);
    if (o.expect_fps > 0) std::printf("full rate (lag < 2 frames): %u of %u\n", full_rate, n);
    if (!lat.empty())
      std::printf("latency send->received: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%zu frames)\n",
                  pct(lat, 0.5), pct(lat, 0.99), pct(lat, 1), lat.size());
    std::printf("loadgen CPU: %.2f s in %.2f s (%.0f%% of one core)\n", cpu, window,
                window > 0 ? 100 * cpu / window : 0);
  }
  js << ",\"errors\":[";
  for (size_t i = 0; i < errors.size(); ++i) {
    js << (i ? "," : "") << "\"" << json_escape(errors[i]) << "\"";
    std::fprintf(stderr, "loadgen: error: %s\n", errors[i].c_str());
  }
  js << "]}";
  if (!o.json_file.empty()) {
    std::ofstream(o.json_file) << js.str() << "\n";
  }
  if (run.failed.load() >= n) return 1;
  return o.until_first_frame && !first_ok ? 1 : 0;
}
