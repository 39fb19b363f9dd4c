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

namespace tlsframe {
namespace {
using tcp = asio::ip::tcp;
constexpr auto kComp = log::Component::kReceiver;
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
  std::optional<wire::MessageReader> reader;  // I/O thread only; made in start()
  std::thread thread;

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
      fail(tls::describe_failure(stream->native_handle(), ec, true));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      is_connected = true;
      peer_subject = tls::peer_subject(stream->native_handle());
    }
    TF_INFO(kComp, "%s: connected (%s, %s)", where.c_str(),
            SSL_get_version(stream->native_handle()), SSL_get_cipher_name(stream->native_handle()));
    read_next();
  }

  // Reads the next piece of the current message: the header, then the
  // payload in chunks; the read timeout restarts on each piece, so a large
  // frame on a slow link is not mistaken for a dead server.
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
    asio::async_read(
        *stream, asio::buffer(space.data, space.size), [this](std::error_code ec, size_t n) {
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
    wire::DecodeResult r = wire::decode(body->data(), body->size(), config.max_payload, view);
    if (r.status != wire::DecodeStatus::kMessage) {
      fail(Error{Error::Kind::kProtocol,
                 "protocol error from " + where + ": " +
                     (r.error.empty() ? std::string("incomplete message") : r.error),
                 ""});
      return;
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

Receiver::Receiver(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Receiver::~Receiver() {
  try {
    stop();
  } catch (...) {  // a destructor must not throw (join/lock failures are not recoverable here)
  }
}

std::unique_ptr<Receiver> Receiver::start(const ReceiverConfig &config) {
  auto impl = std::make_shared<Impl>();
  impl->config = config;
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
