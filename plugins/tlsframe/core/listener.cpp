#include "core/listener.h"

#include <sys/resource.h>

#include <algorithm>

#include "core/endpoint.h"
#include "core/log.h"
#include "core/session.h"

namespace tlsframe {
namespace {

using tcp = asio::ip::tcp;
constexpr auto kComp = log::Component::kServer;

}  // namespace

// One host or site commonly holds a whole IPv6 /64.
std::string source_key(const asio::ip::address &a) {
  if (a.is_v4()) return a.to_string();
  asio::ip::address_v6 v6 = a.to_v6();
  if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
  asio::ip::address_v6::bytes_type b = v6.to_bytes();
  for (size_t i = 8; i < b.size(); ++i) b[i] = 0;
  return asio::ip::address_v6(b).to_string() + "/64";
}

// Half the open-file limit, so handshakes alone never exhaust descriptors
// that connected clients and the rest of the process need.
size_t effective_max_handshakes(size_t configured) {
  rlimit rl{};
  size_t limit = std::max<size_t>(1, configured);
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const size_t half = std::max<size_t>(1, static_cast<size_t>(rl.rlim_cur) / 2);
    if (limit > half) {
      TF_INFO(kComp, "max handshakes %zu clamped to %zu: half the open-file limit (%llu)", limit,
              half, static_cast<unsigned long long>(rl.rlim_cur));
      limit = half;
    }
  }
  return limit;
}

Listener::Listener(asio::io_context &io, ListenerConfig config, tls::ContextPtr ctx,
                   ServerCounters *counters)
    : io_(io),
      config_(std::move(config)),
      counters_(counters),
      strand_(asio::make_strand(io)),
      acceptor_(strand_),
      retry_(strand_),
      ctx_(std::move(ctx)) {}

Result<uint16_t> Listener::listen() {
  std::error_code ec;
  std::string host = config_.host.empty() ? "0.0.0.0" : config_.host;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) {
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(host, "", asio::ip::resolver_base::passive, ec);
    if (ec || results.empty()) {
      return Error{Error::Kind::kNetwork, "cannot resolve listen address '" + host + "'",
                   ec.message()};
    }
    address = results.begin()->endpoint().address();
  }
  tcp::endpoint endpoint(address, config_.port);
  const std::string where =
      (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
      std::to_string(config_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(config_.backlog, ec);
  if (ec) {
    return Error{Error::Kind::kNetwork, "cannot listen on " + where + ": " + ec.message(),
                 ec.message()};
  }
  const uint16_t port = acceptor_.local_endpoint(ec).port();
  TF_INFO(kComp, "listening on %s (port %u); at most %zu handshakes at once, %zu per address",
          where.c_str(), port, config_.max_handshakes, config_.max_handshakes_per_address);
  return port;
}

void Listener::start(Accepted accepted) {
  accepted_ = std::move(accepted);
  do_accept();
}

void Listener::close() {
  asio::post(strand_, [this] {
    std::error_code ec;
    acceptor_.close(ec);
    retry_.cancel();
  });
}

// Handlers capture `this`: the server joins its I/O threads before the listener dies.
void Listener::do_accept() {
  acceptor_.async_accept(asio::make_strand(io_), [this](std::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // EMFILE and friends: back off instead of spinning.
      TF_WARNING(kComp, "accept failed: %s", ec.message().c_str());
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](std::error_code tec) {
        if (!tec) do_accept();
      });
      return;
    }
    on_accept(std::move(socket));
    do_accept();
  });
}

void Listener::on_accept(tcp::socket socket) {
  std::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  if (config_.send_buffer_size > 0) {
    socket.set_option(asio::socket_base::send_buffer_size(config_.send_buffer_size), ec);
  }
  tcp::endpoint peer = socket.remote_endpoint(ec);
  std::string address = ec ? std::string("unknown") : format_endpoint(peer);
  std::string source = ec ? address : source_key(peer.address());
  {
    auto adm = admission_.lock();
    if (adm->handshaking >= config_.max_handshakes) {
      // Closed before any TLS work: handshakes in flight stay bounded.
      counters_->refused++;
      TF_WARNING(kComp, "%s: %zu handshakes in progress, closing the new connection",
                 address.c_str(), adm->handshaking);
      return;
    }
    size_t &from_source = adm->handshaking_by_source[source];
    if (config_.max_handshakes_per_address > 0 &&
        from_source >= config_.max_handshakes_per_address) {
      // DEBUG, not WARNING: a flood would otherwise flood the log too.
      counters_->refused++;
      TF_DEBUG(kComp, "%s: %zu handshakes in progress from %s, closing the new connection",
               address.c_str(), from_source, source.c_str());
      return;
    }
    from_source++;
    adm->handshaking++;
  }
  accepted_(std::move(socket), std::move(address), std::move(source));
}

void Listener::end_handshake(const std::string &source) {
  auto adm = admission_.lock();
  adm->handshaking--;
  auto it = adm->handshaking_by_source.find(source);
  if (it != adm->handshaking_by_source.end() && --it->second == 0) {
    adm->handshaking_by_source.erase(it);
  }
}

bool Listener::admit(const std::string &source) {
  end_handshake(source);
  auto adm = admission_.lock();
  if (config_.max_clients > 0 && adm->admitted >= config_.max_clients) {
    counters_->refused++;
    return false;
  }
  adm->admitted++;
  return true;
}

void Listener::release_client() {
  admission_.lock()->admitted--;
}

}  // namespace tlsframe
