// tlsframe-loadgen: many client connections in one process. A Worker owns a
// set of connections and one epoll loop on its own thread; a connection is a
// non-blocking socket with, optionally, an OpenSSL session on it, and a
// streaming parser that counts frames without copying their payload.
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>

namespace tlsframe::loadgen {

enum class Protocol {
  kTlsframe,  // tlsframe wire protocol: frames, sequence numbers and send times are parsed
  kRaw,       // any byte stream (tcpserversink, stunnel): bytes are counted, frames derived
};

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 9999;
  std::string server_name;  // checked name and SNI ("" = host)
  std::string ca_file;
  std::string cert_file, key_file;
  bool tls = true;
  Protocol protocol = Protocol::kTlsframe;
  // As a browser: ALPN http/1.1, the GET + Upgrade of the viewer page on ws_path, then
  // the stream's v2 messages, each in a binary WebSocket message (caps as text).
  bool websocket = false;
  std::string ws_path = "/watch/";
  std::string ws_host;  // Host (and Origin https://Host) header: "host:port" ([v6]:port)
  // Protocol version 2 (native clients): ALPN tlsframe/2, a HELLO naming `stream` ("" = the
  // default stream) and, when `renditions` is not empty, client i's rendition
  // renditions[i % size]; then WELCOME, RENDITION, CAPS, BUFFER... With --websocket, the
  // rendition is asked for by a RENDITION_REQUEST after the upgrade.
  bool v2 = false;
  std::string stream;
  std::vector<std::string> renditions;
  unsigned clients = 1;
  unsigned threads = 2;
  double warmup_s = 2;
  double duration_s = 5;
  double first_frame_timeout_s = 30;
  bool until_first_frame = false;  // stop once every client has its first frame
  bool retry = false;              // reconnect after a failure before the first frame
  uint64_t frame_size = 0;         // raw protocol: bytes per frame, to derive frames
  double expect_fps = 0;           // rate of the stream, for the full-rate check (0 = unknown)
  unsigned rcvbuf = 0;             // SO_RCVBUF (0 = system default)
  // Plain TCP: send one byte once connected. With SYN cookies, a connect can complete
  // on the client while the server's full accept queue drops it; a client that never
  // sends then waits forever, whereas a sent byte is retransmitted until it is accepted.
  bool hello = false;
  // At most this many clients connecting at a time, i.e. opened but without a first
  // frame yet (0 = open every client at once). For servers with a small listen backlog.
  unsigned connect_batch = 0;
  std::string json_file;
};

// Counters of one connection; written by its worker thread, read by anyone.
struct ClientCounters {
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> bytes{0};        // application bytes received
  std::atomic<uint64_t> seq_gaps{0};     // frames the server skipped for this client
  std::atomic<int64_t> first_frame_ns{-1};  // since the run started; -1 = none yet
  std::atomic<int> state{0};             // see Connection::State
  std::atomic<unsigned> attempts{0};
};

struct SharedRun {
  Options opt;
  struct sockaddr_storage addr {};
  socklen_t addr_len = 0;
  SSL_CTX *ctx = nullptr;
  std::string verify_name;
  int64_t start_ns = 0;  // steady clock
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<ClientCounters>> counters;
  std::atomic<unsigned> done_first{0};  // clients with a first frame or given up
  std::atomic<unsigned> opened{0};      // clients opened at least once (--connect-batch)
  std::atomic<unsigned> failed{0};      // clients that ended in an error
  std::atomic<unsigned> eos{0};
};

class Worker {
 public:
  Worker(SharedRun &run, std::vector<unsigned> client_ids);
  ~Worker();
  void start();
  void join();
  // Clients per rendition the server last stated (WELCOME or RENDITION; "" = none stated),
  // and clients whose last stated rendition is not the one they asked for; after join().
  std::map<std::string, unsigned> rendition_counts() const;
  unsigned rendition_mismatches() const;
  // Latency samples (µs) of frames completed while measuring; read after join().
  const std::vector<uint32_t> &latencies_us() const { return latencies_; }
  const std::vector<std::string> &errors() const { return errors_; }

 private:
  struct Connection;
  void loop();
  void open(Connection &c);
  void open_batch();  // --connect-batch: opens idle clients while slots are free
  void close_conn(Connection &c, const std::string &error);
  void on_event(Connection &c, uint32_t events);
  bool drive_handshake(Connection &c);
  void read_all(Connection &c);
  bool consume(Connection &c, const uint8_t *p, size_t n);  // false: protocol error / end
  // tlsframe messages (v1, or v2 inside WebSocket messages); false: error / end.
  bool consume_messages(Connection &c, const uint8_t *p, size_t n);
  // --websocket: the upgrade request, the 101 response head, then server frames.
  bool send_upgrade(Connection &c);
  bool consume_websocket(Connection &c, const uint8_t *p, size_t n);
  bool check_upgrade_response(Connection &c);
  // Version 2: the ALPN the server chose, then one client message (HELLO, or with
  // --websocket a RENDITION_REQUEST in a masked frame), written whole, retried on EPOLLOUT.
  bool check_alpn(Connection &c);
  bool send_pending(Connection &c);
  // One SSL_write of all of data (no partial writes): kDone, then the
  // connection waits for input; kWaiting: it waits for output too and the
  // caller retries the same bytes on the next event; kFailed: closed, the
  // error prefixed with `what`.
  enum class Write { kDone, kWaiting, kFailed };
  Write write_whole(Connection &c, const void *data, size_t size, const char *what);
  // A v2 message with a field block (WELCOME, RENDITION): the rendition it states.
  bool on_rendition_message(Connection &c);

  SharedRun &run_;
  std::vector<std::unique_ptr<Connection>> conns_;
  size_t next_idle_ = 0;  // --connect-batch: first client not opened yet
  int epfd_ = -1;
  std::thread thread_;
  std::vector<uint8_t> scratch_;
  std::vector<uint32_t> latencies_;
  std::vector<std::string> errors_;  // first few distinct errors
};

int64_t steady_ns();
uint64_t realtime_ns();

}  // namespace tlsframe::loadgen
