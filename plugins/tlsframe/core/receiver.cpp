#include "core/receiver.h"

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "core/endpoint.h"
#include "core/log.h"
#include "core/wire_v2.h"

namespace tlsframe {
namespace {
using tcp = asio::ip::tcp;
constexpr auto kComp = log::Component::kReceiver;

// Where a connection is, from the I/O thread's point of view.
enum class Phase {
  kConnecting,    // resolve, connect, TLS handshake
  kAwaitWelcome,  // v2: HELLO sent, waiting for WELCOME (STREAM_LISTs may come first)
  kAwaitList,     // list_streams(): LIST_STREAMS sent, waiting for STREAM_LIST
  kStreaming,     // v1 from the handshake on, v2 after WELCOME
};

std::string printable(std::string_view text) {
  std::string out(text.substr(0, wire::kMaxErrorText));
  for (char &c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}
}  // namespace

// Everything that touches the socket runs on the single I/O thread; the
// consumer side only touches the fields under `mutex`.
struct Receiver::Impl {
  ReceiverConfig config;
  std::string where;  // "host:port" for messages
  asio::io_context io;
  // Keeps run() going while reading is paused for backpressure (no pending operation).
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tls::ContextPtr ctx;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> stream;
  tcp::resolver resolver{io};
  asio::steady_timer timer{io};  // connect deadline, then read deadline
  uint64_t timer_gen = 0;        // I/O thread only
  // Memory follows the bytes that arrived, not the length a header announces.
  std::optional<wire::MessageReader> reader;  // I/O thread only; remade after the handshake
  std::thread thread;
  bool list_only = false;  // list_streams(): fixed at start
  // I/O thread only:
  Phase phase = Phase::kConnecting;
  wire::Protocol protocol = wire::Protocol::kV1Client;
  std::deque<std::vector<uint8_t>> writes;  // small client messages; front is being written
  bool writing = false;                     // an async_write is in flight

  mutable std::mutex mutex;  // protects the fields below
  std::condition_variable cond;
  std::deque<Received> queue;    // decoded, not yet taken by next()
  std::optional<Error> failure;  // terminal failure, reported once the queue is empty
  bool cancelled = false;        // next() returns kCancelled until clear_cancel()
  bool paused = false;           // reading stopped because the queue is full
  bool finished = false;         // EOS or ERROR received: no more reads
  bool is_connected = false;
  bool stopped = false;
  std::string peer_address, peer_subject;
  std::optional<Welcome> welcome;                         // set when the stream starts
  std::optional<std::vector<StreamInfo>> streams;         // the last STREAM_LIST
  bool keyframe_in_flight = false;                        // cleared by a keyframe
  std::chrono::steady_clock::time_point keyframe_sent{};  // last KEYFRAME_REQUEST
  bool list_in_flight = false;                            // cleared by a STREAM_LIST
  std::chrono::steady_clock::time_point list_sent{};      // last LIST_STREAMS
  size_t queued_requests = 0;                             // posted, not yet written

  void fail(const Error &e) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (failure || finished) return;
      failure = e;
      is_connected = false;
    }
    if (e.kind == Error::Kind::kCancelled) {
      TF_DEBUG(kComp, "%s: %s", where.c_str(), e.message.c_str());
    } else {
      TF_WARNING(kComp, "%s: %s (%s)", where.c_str(), e.message.c_str(), e.detail.c_str());
    }
    cond.notify_all();
    close_socket();
  }

  void close_socket() {
    std::error_code ignored;
    timer.cancel();
    resolver.cancel();
    if (stream) stream->lowest_layer().close(ignored);
  }

  void arm_timer(std::chrono::nanoseconds after, Error::Kind kind, const std::string &message) {
    uint64_t gen = ++timer_gen;
    if (after.count() <= 0) {
      timer.cancel();
      return;
    }
    timer.expires_after(after);
    timer.async_wait([this, gen, kind, message](std::error_code ec) {
      if (ec || gen != timer_gen) return;
      fail(Error{kind, message, ""});
    });
  }

  void begin() {
    arm_timer(config.connect_timeout, Error::Kind::kTimeout, "timed out connecting to " + where);
    resolver.async_resolve(
        config.host, std::to_string(config.port),
        [this](std::error_code ec, const tcp::resolver::results_type &results) {
          if (ec) {
            fail(Error{Error::Kind::kNetwork,
                       "cannot resolve '" + config.host + "': " + ec.message(), ec.message()});
            return;
          }
          connect(results);
        });
  }

  void connect(const tcp::resolver::results_type &results) {
    asio::async_connect(
        stream->lowest_layer(), results, [this](std::error_code ec, const tcp::endpoint &ep) {
          if (ec) {
            fail(Error{ec == asio::error::operation_aborted ? Error::Kind::kTimeout
                                                            : Error::Kind::kNetwork,
                       "cannot connect to " + where + ": " + ec.message(), ec.message()});
            return;
          }
          std::error_code ignored;
          stream->lowest_layer().set_option(tcp::no_delay(true), ignored);
          {
            std::lock_guard<std::mutex> lock(mutex);
            peer_address = format_endpoint(ep);
          }
          TF_DEBUG(kComp, "%s: TCP connected to %s, handshaking", where.c_str(),
                   format_endpoint(ep).c_str());
          stream->async_handshake(asio::ssl::stream_base::client,
                                  [this](std::error_code hec) { on_handshake(hec); });
        });
  }

  void on_handshake(std::error_code ec) {
    if (ec) {
      // A pinned server certificate that does not match: both fingerprints.
      std::optional<Error> pin = tls::pin_mismatch(stream->native_handle());
      fail(pin ? *pin : tls::describe_failure(stream->native_handle(), ec, true));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      is_connected = true;
      peer_subject = tls::peer_subject(stream->native_handle());
    }
    SSL *ssl = stream->native_handle();
    const unsigned char *alpn = nullptr;
    unsigned int alpn_size = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_size);
    const std::string_view selected(reinterpret_cast<const char *>(alpn), alpn ? alpn_size : 0);
    TF_INFO(kComp, "%s: connected (%s, %s, protocol %s)", where.c_str(), SSL_get_version(ssl),
            SSL_get_cipher_name(ssl), selected.empty() ? "1" : std::string(selected).c_str());
    if (selected == wire::kAlpnV2) {
      protocol = wire::Protocol::kV2Client;
      reader.emplace(protocol, config.max_payload);
      if (list_only) {
        phase = Phase::kAwaitList;
        send_now(wire::encode_list_streams());
      } else {
        phase = Phase::kAwaitWelcome;
        std::vector<wire::Field> hello = {{"stream", config.stream_name}};
        if (!config.rendition.empty()) hello.push_back({"rendition", config.rendition});
        send_now(wire::encode_hello(hello));
      }
    } else if (!selected.empty()) {
      fail(Error{
          Error::Kind::kProtocol,
          "the server at " + where + " chose an unknown protocol \"" + printable(selected) + "\"",
          ""});
      return;
    } else if (list_only) {
      fail(Error{Error::Kind::kPeerRefused,
                 "the server at " + where +
                     " speaks protocol version 1: it has only its default stream and cannot "
                     "list streams",
                 ""});
      return;
    } else if (!config.stream_name.empty()) {
      fail(Error{Error::Kind::kNotFound,
                 "the server at " + where +
                     " speaks protocol version 1 and has no named streams; leave stream-name "
                     "empty (asked for \"" +
                     config.stream_name + "\")",
                 ""});
      return;
    } else {
      protocol = wire::Protocol::kV1Client;
      phase = Phase::kStreaming;
      {
        std::lock_guard<std::mutex> lock(mutex);
        welcome = Welcome{};
      }
    }
    read_next();
  }

  // Queues one small client message and starts writing it unless a write is
  // in flight. I/O thread only; one async_write at a time, beside the read.
  void send_now(std::vector<uint8_t> message) {
    if (message.empty()) return;
    writes.push_back(std::move(message));
    write_next();
  }

  void write_next() {
    if (writing || writes.empty() || !stream) return;
    writing = true;
    asio::async_write(*stream, asio::buffer(writes.front()), [this](std::error_code ec, size_t) {
      writing = false;
      if (ec) {
        fail(tls::describe_failure(stream->native_handle(), ec, true));
        return;
      }
      TF_DEBUG(kComp, "%s: sent %s", where.c_str(),
               wire::message_type_name(static_cast<wire::MessageType>(writes.front()[5])));
      writes.pop_front();
      write_next();
    });
  }

  // From any thread: posts a request to the I/O thread (never blocks).
  SendStatus post_request(bool keyframe) {
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!welcome || !is_connected || stopped || finished || failure) return SendStatus::kNotReady;
      if (welcome->version < 2) return SendStatus::kNotSupported;
      if (queued_requests >= kMaxQueuedRequests) return SendStatus::kRateLimited;
      if (keyframe) {
        const auto interval = welcome->keyframe_interval_ms
                                  ? std::chrono::milliseconds(welcome->keyframe_interval_ms)
                                  : std::chrono::duration_cast<std::chrono::milliseconds>(
                                        kClientKeyframeRequestInterval);
        if (keyframe_in_flight && now - keyframe_sent < interval) return SendStatus::kRateLimited;
        keyframe_in_flight = true;
        keyframe_sent = now;
      } else {
        if (list_in_flight && now - list_sent < kClientKeyframeRequestInterval)
          return SendStatus::kRateLimited;
        list_in_flight = true;
        list_sent = now;
      }
      ++queued_requests;
    }
    asio::post(io, [this, keyframe] {
      {
        std::lock_guard<std::mutex> lock(mutex);
        --queued_requests;
      }
      if (phase != Phase::kStreaming) return;  // closed meanwhile
      send_now(keyframe ? wire::encode_keyframe_request() : wire::encode_list_streams());
    });
    return SendStatus::kQueued;
  }

  // RENDITION_REQUEST: not rate-limited beyond the queue bound (a person
  // or an application changes it now and then).
  SendStatus post_rendition(const std::string &rendition) {
    if (rendition != wire::kRenditionAuto && !wire::valid_rendition_name(rendition))
      return SendStatus::kNotSupported;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!welcome || !is_connected || stopped || finished || failure) return SendStatus::kNotReady;
      if (welcome->version < 2) return SendStatus::kNotSupported;
      if (queued_requests >= kMaxQueuedRequests) return SendStatus::kRateLimited;
      ++queued_requests;
    }
    asio::post(io, [this, rendition] {
      {
        std::lock_guard<std::mutex> lock(mutex);
        --queued_requests;
      }
      if (phase != Phase::kStreaming) return;  // closed meanwhile
      send_now(wire::encode_rendition_request(rendition));
    });
    return SendStatus::kQueued;
  }

  // Reads whatever has arrived of the current message (the header, then the
  // payload), at most one reader chunk at a time. The read timeout restarts on
  // every read that returns data, so it means "no data at all for that long":
  // a large frame on a slow but steady link is not mistaken for a dead server.
  void read_next() {
    arm_timer(config.read_timeout, Error::Kind::kTimeout,
              "no data from " + where + " within the timeout");
    wire::MessageReader::Space space = reader->prepare();
    if (space.size == 0) {
      fail(Error{Error::Kind::kProtocol,
                 "cannot allocate memory for a message from " + where + " (" +
                     std::to_string(reader->received()) + " bytes received)",
                 ""});
      return;
    }
    stream->async_read_some(
        asio::buffer(space.data, space.size), [this](std::error_code ec, size_t n) {
          if (ec) {
            fail(tls::describe_failure(stream->native_handle(), ec, true));
            return;
          }
          wire::DecodeResult r = reader->commit(n);
          if (r.status == wire::DecodeStatus::kError) {
            fail(
                Error{Error::Kind::kProtocol, "protocol error from " + where + ": " + r.error, ""});
          } else if (r.status == wire::DecodeStatus::kNeedMore) {
            read_next();
          } else {
            on_body(reader->take());
          }
        });
  }

  void on_body(std::shared_ptr<std::vector<uint8_t>> body) {
    wire::MessageView view;
    wire::DecodeResult r =
        wire::decode(body->data(), body->size(), config.max_payload, protocol, view);
    if (r.status != wire::DecodeStatus::kMessage) {
      fail(Error{Error::Kind::kProtocol,
                 "protocol error from " + where + ": " +
                     (r.error.empty() ? std::string("incomplete message") : r.error),
                 ""});
      return;
    }
    // Version 2 order: STREAM_LISTs, then one WELCOME (or an ERROR), then the
    // stream with STREAM_LISTs anywhere.
    const bool stream_message = view.type == wire::MessageType::kCaps ||
                                view.type == wire::MessageType::kBuffer ||
                                view.type == wire::MessageType::kEos ||
                                view.type == wire::MessageType::kRendition;
    if (view.type == wire::MessageType::kWelcome && phase != Phase::kAwaitWelcome) {
      fail(Error{Error::Kind::kProtocol,
                 "protocol error from " + where + ": " +
                     (phase == Phase::kStreaming ? "a second WELCOME" : "a WELCOME unasked for"),
                 ""});
      return;
    }
    if (stream_message && phase != Phase::kStreaming) {
      fail(Error{Error::Kind::kProtocol,
                 "protocol error from " + where + ": " + wire::message_type_name(view.type) +
                     " before WELCOME",
                 ""});
      return;
    }
    if (view.type == wire::MessageType::kWelcome) {
      Welcome w;
      w.version = 2;
      w.stream.assign(view.stream);
      w.server.assign(view.server);
      w.keyframe_interval_ms = view.keyframe_interval_ms;
      w.rendition.assign(view.rendition);
      if (const auto list = view.fields.find("renditions")) w.renditions = wire::rendition_list(*list);
      TF_INFO(kComp, "%s: WELCOME to stream \"%s\" from \"%s\" (keyframe interval %u ms)",
              where.c_str(), printable(w.stream).c_str(), printable(w.server).c_str(),
              w.keyframe_interval_ms);
      {
        std::lock_guard<std::mutex> lock(mutex);
        welcome = std::move(w);
      }
      phase = Phase::kStreaming;
      read_next();
      return;
    }
    if (view.type == wire::MessageType::kStreamList) {
      std::vector<StreamInfo> list;
      size_t offset = 0;
      wire::StreamEntry entry;
      while (wire::next_stream(view.streams, offset, entry)) {
        list.push_back(StreamInfo{std::string(entry.name), std::string(entry.caps), entry.viewers});
      }
      TF_DEBUG(kComp, "%s: STREAM_LIST of %zu streams", where.c_str(), list.size());
      const bool done = phase == Phase::kAwaitList;
      {
        std::lock_guard<std::mutex> lock(mutex);
        streams = std::move(list);
        list_in_flight = false;
        if (done) {
          finished = true;
          is_connected = false;
        }
      }
      cond.notify_all();
      if (done) {
        close_socket();
      } else {
        read_next();
      }
      return;
    }
    if (view.type == wire::MessageType::kBuffer && !(view.meta.flags & wire::kFlagDeltaUnit)) {
      std::lock_guard<std::mutex> lock(mutex);
      keyframe_in_flight = false;
    }
    Received m;
    m.type = view.type;
    switch (view.type) {
      case wire::MessageType::kCaps:
        m.caps.assign(view.caps);
        break;
      case wire::MessageType::kBuffer:
        m.meta = view.meta;
        m.data_offset = static_cast<size_t>(view.data - body->data());
        m.data_size = view.data_size;
        m.storage = std::move(body);
        break;
      case wire::MessageType::kEos:
        break;
      case wire::MessageType::kError:
        m.error_code = view.error_code;
        m.error_text.assign(view.error_text);
        break;
      case wire::MessageType::kRendition:
        m.rendition.assign(view.rendition);
        m.reason.assign(view.reason);
        TF_INFO(kComp, "%s: rendition \"%s\" from the next caps on (%s)", where.c_str(),
                m.rendition.c_str(), printable(m.reason).c_str());
        break;
      default:  // client -> server types: decode() refuses them for a client
        fail(Error{
            Error::Kind::kProtocol,
            "protocol error from " + where + ": unexpected " + wire::message_type_name(view.type),
            ""});
        return;
    }
    TF_LOGV(kComp, "%s: %s message", where.c_str(), wire::message_type_name(m.type));
    bool last = m.type == wire::MessageType::kEos || m.type == wire::MessageType::kError;
    bool read_more;
    {
      std::lock_guard<std::mutex> lock(mutex);
      queue.push_back(std::move(m));
      if (last) {
        finished = true;
        is_connected = false;
      }
      paused = !last && queue.size() >= config.max_queued;
      read_more = !last && !paused;
    }
    cond.notify_all();
    if (last) {
      close_socket();
    } else if (read_more) {
      read_next();
    } else {
      timer.cancel();  // paused by backpressure: the read deadline does not run meanwhile
      ++timer_gen;
    }
  }
};

namespace {

Error bad_address(std::string_view text, const std::string &why) {
  return Error{Error::Kind::kSettings,
               "cannot read \"" + printable(text) + "\" as a tlsframe address: " + why, ""};
}

bool ascii_iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// HOST[:PORT][/NAME], no scheme.
Result<StreamAddress> parse_authority_path(std::string_view whole, std::string_view text) {
  StreamAddress out;
  out.port = kDefaultPort;
  if (text.find_first_of("?#") != std::string_view::npos)
    return bad_address(whole, "a query or fragment is not allowed");
  size_t slash = text.find('/');
  std::string_view authority = text.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : text.substr(slash + 1);
  if (authority.find('@') != std::string_view::npos)
    return bad_address(whole, "user information (NAME@) is not allowed");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad_address(whole, "'[' without ']'");
    std::string_view v6 = authority.substr(1, close - 1);
    std::error_code ec;
    asio::ip::make_address_v6(std::string(v6), ec);
    if (v6.empty() || ec) return bad_address(whole, "not an IPv6 address between [ and ]");
    out.host.assign(v6);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad_address(whole, "unexpected text after ']'");
      port_text = rest.substr(1);
      if (port_text.empty()) return bad_address(whole, "an empty port");
    }
  } else {
    size_t colon = authority.find(':');
    std::string_view host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return bad_address(whole, "an empty port");
    }
    if (host.empty()) return bad_address(whole, "no host");
    for (char c : host) {
      if (!host_char(c))
        return bad_address(whole, "the host may hold A-Z a-z 0-9 . - _ only (IPv6 as [addr])");
    }
    out.host.assign(host);
  }
  if (!port_text.empty()) {
    uint32_t port = 0;
    if (!wire::parse_decimal_u32(port_text, port) || port < 1 || port > 65535)
      return bad_address(whole, "the port must be a number from 1 to 65535");
    out.port = static_cast<uint16_t>(port);
  }
  if (!path.empty() && !wire::valid_stream_name(path))
    return bad_address(whole,
                       "the stream name must be 1 to 64 of A-Z a-z 0-9 . _ -, not starting "
                       "with '.'");
  out.stream.assign(path);
  return out;
}

}  // namespace

Result<StreamAddress> parse_stream_uri(std::string_view uri) {
  size_t colon = uri.find("://");
  if (colon == std::string_view::npos || !ascii_iequal(uri.substr(0, colon), kUriScheme))
    return bad_address(uri, "the URI must start with tlsframe://");
  return parse_authority_path(uri, uri.substr(colon + 3));
}

Result<StreamAddress> parse_stream_target(std::string_view text) {
  if (text.find("://") != std::string_view::npos) return parse_stream_uri(text);
  return parse_authority_path(text, text);
}

std::string format_stream_uri(const StreamAddress &address) {
  const bool v6 = address.host.find(':') != std::string::npos;
  std::string out = std::string(kUriScheme) + "://" +
                    (v6 ? "[" + address.host + "]" : address.host) + ":" +
                    std::to_string(address.port);
  if (!address.stream.empty()) out += "/" + address.stream;
  return out;
}

Receiver::Receiver(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Receiver::~Receiver() {
  try {
    stop();
  } catch (...) {  // a destructor must not throw (join/lock failures are not recoverable here)
  }
}

std::unique_ptr<Receiver> Receiver::start(const ReceiverConfig &config) {
  return start_impl(config, false);
}

std::unique_ptr<Receiver> Receiver::start_impl(const ReceiverConfig &config, bool list_only) {
  auto impl = std::make_shared<Impl>();
  impl->config = config;
  impl->list_only = list_only;
  impl->config.max_queued = std::max<size_t>(1, config.max_queued);
  impl->reader.emplace(config.max_payload);
  bool v6 = config.host.find(':') != std::string::npos;
  impl->where = (v6 ? "[" + config.host + "]" : config.host) + ":" + std::to_string(config.port);
  std::unique_ptr<Receiver> receiver(new Receiver(impl));
  auto ctx = tls::make_client_context(config.tls);
  if (!ctx) {
    impl->failure = ctx.error();
    return receiver;
  }
  impl->ctx = ctx.value();
  impl->stream = std::make_unique<asio::ssl::stream<tcp::socket>>(impl->io, *impl->ctx);
  const std::string &name = config.server_name.empty() ? config.host : config.server_name;
  if (Status s = tls::set_expected_server_name(impl->stream->native_handle(), name); !s) {
    impl->failure = s.error();
    return receiver;
  }
  if (!list_only && !config.stream_name.empty() && !wire::valid_stream_name(config.stream_name)) {
    impl->failure = Error{Error::Kind::kSettings,
                          "invalid stream name \"" + printable(config.stream_name) +
                              "\": 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.'",
                          ""};
    return receiver;
  }
  // Always offer version 2; a server that selects nothing is a version 1 server.
  if (SSL_set_alpn_protos(impl->stream->native_handle(), wire::kAlpnOfferV2,
                          sizeof wire::kAlpnOfferV2) != 0) {
    impl->failure = Error{Error::Kind::kSettings, "cannot offer ALPN tlsframe/2", ""};
    return receiver;
  }
  Impl *p = impl.get();
  impl->work.emplace(impl->io.get_executor());
  asio::post(impl->io, [p] { p->begin(); });
  impl->thread = std::thread([p] { p->io.run(); });
  return receiver;
}

NextStatus Receiver::next(Received &out, Error &error,
                          std::chrono::steady_clock::time_point deadline) {
  Impl *p = impl_.get();
  std::unique_lock<std::mutex> lock(p->mutex);
  bool woke = p->cond.wait_until(
      lock, deadline, [p] { return p->cancelled || !p->queue.empty() || p->failure.has_value(); });
  if (p->cancelled) return NextStatus::kCancelled;
  if (!woke) return NextStatus::kTimeout;
  if (!p->queue.empty()) {
    out = std::move(p->queue.front());
    p->queue.pop_front();
    if (p->paused && p->queue.size() < p->config.max_queued && !p->stopped) {
      p->paused = false;
      asio::post(p->io, [p] { p->read_next(); });
    }
    return NextStatus::kMessage;
  }
  error = *p->failure;
  return NextStatus::kError;
}

void Receiver::cancel() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->cancelled = true;
  }
  impl_->cond.notify_all();
}

void Receiver::clear_cancel() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->cancelled = false;
}

void Receiver::stop() {
  Impl *p = impl_.get();
  {
    std::lock_guard<std::mutex> lock(p->mutex);
    if (p->stopped) return;
    p->stopped = true;
  }
  if (p->thread.joinable()) {
    p->io.stop();
    p->thread.join();
    p->close_socket();  // the I/O thread is gone: safe to touch the socket here
  }
  std::lock_guard<std::mutex> lock(p->mutex);
  p->is_connected = false;
}

SendStatus Receiver::request_keyframe() {
  return impl_->post_request(true);
}

SendStatus Receiver::request_stream_list() {
  return impl_->post_request(false);
}

SendStatus Receiver::request_rendition(const std::string &rendition) {
  return impl_->post_rendition(rendition);
}

std::optional<std::vector<StreamInfo>> Receiver::stream_list() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->streams;
}

std::optional<Welcome> Receiver::welcome() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->welcome;
}

Result<std::vector<StreamInfo>> Receiver::list_streams(const ReceiverConfig &config) {
  std::unique_ptr<Receiver> r = start_impl(config, true);
  Impl *p = r->impl_.get();
  const auto deadline =
      std::chrono::steady_clock::now() + config.connect_timeout +
      (config.read_timeout.count() > 0 ? config.read_timeout
                                       : std::chrono::nanoseconds(kDefaultReadTimeout));
  std::optional<std::vector<StreamInfo>> list;
  std::optional<Error> error;
  {
    std::unique_lock<std::mutex> lock(p->mutex);
    p->cond.wait_until(lock, deadline, [p] {
      return p->streams.has_value() || p->failure.has_value() || !p->queue.empty();
    });
    if (p->streams) {
      list = std::move(p->streams);
    } else if (!p->queue.empty() && p->queue.front().type == wire::MessageType::kError) {
      const Received &m = p->queue.front();
      error = Error{
          Error::Kind::kPeerRefused,
          "the server at " + p->where + " refused to list its streams: " + printable(m.error_text),
          "server error code " + std::to_string(m.error_code)};
    } else if (p->failure) {
      error = p->failure;
    } else {
      error = Error{Error::Kind::kTimeout, "no stream list from " + p->where + " in time", ""};
    }
  }
  r->stop();
  if (list) return std::move(*list);
  return *error;
}

bool Receiver::connected() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->is_connected;
}

std::string Receiver::peer_address() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->peer_address;
}

std::string Receiver::peer_subject() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->peer_subject;
}

}  // namespace tlsframe
