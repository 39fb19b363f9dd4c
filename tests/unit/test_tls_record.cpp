// core/tls_record over a real loopback TCP connection: TlsRecord::encrypt_to
// hands each record to the socket while the kernel takes it and keeps the
// rest, in order, for the caller's write. The client is a plain OpenSSL
// client on the other end, so what it decrypts is what a viewer would read.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "common/pki.h"
#include "core/tls_context.h"
#include "core/tls_record.h"

namespace tls = tlsframe::tls;
using tlsframe::TlsRecord;

namespace {

using Clock = std::chrono::steady_clock;

std::vector<uint8_t> pattern(size_t size) {
  std::vector<uint8_t> v(size);
  for (size_t i = 0; i < size; ++i) v[i] = static_cast<uint8_t>((i * 131) ^ (i >> 9));
  return v;
}

class TlsRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(connect_pair());
    ASSERT_EQ(fcntl(client_fd_, F_SETFL, O_NONBLOCK), 0);
    tls::ServerTlsConfig sc;
    sc.cert_file = pki_.server_cert();
    sc.key_file = pki_.server_key();
    auto server_ctx = tls::make_server_context(sc);
    ASSERT_TRUE(server_ctx.ok()) << server_ctx.error().message;
    tls::ClientTlsConfig cc;
    cc.ca_file = pki_.ca();
    auto client_ctx = tls::make_client_context(cc);
    ASSERT_TRUE(client_ctx.ok()) << client_ctx.error().message;
    client_ctx_ = client_ctx.value();
    server_ = std::make_unique<TlsRecord>(server_ctx.value());
    ASSERT_TRUE(server_->ok());
    client_ = SSL_new(client_ctx_->native_handle());
    ASSERT_NE(client_, nullptr);
    SSL_set_fd(client_, client_fd_);
    SSL_set_connect_state(client_);
    ASSERT_TRUE(tls::set_expected_server_name(client_, "localhost").ok());
    ASSERT_TRUE(handshake());
  }
  // A TCP connection over loopback: server_fd_ accepted, client_fd_ connected.
  bool connect_pair() {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    bool ok = listener >= 0 && bind(listener, reinterpret_cast<sockaddr *>(&addr), len) == 0 &&
              listen(listener, 1) == 0 &&
              getsockname(listener, reinterpret_cast<sockaddr *>(&addr), &len) == 0;
    client_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    ok = ok && client_fd_ >= 0 &&
         connect(client_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
    server_fd_ = ok ? accept(listener, nullptr, nullptr) : -1;
    if (listener >= 0) close(listener);
    return ok && server_fd_ >= 0;
  }
  void TearDown() override {
    if (client_) SSL_free(client_);
    close(server_fd_);
    close(client_fd_);
  }

  // Writes the server's pending output with blocking writes (the client reads
  // it as needed elsewhere; here the output is small).
  void flush_server() {
    std::vector<uint8_t> out;
    server_->take_output(out);
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = write(server_fd_, out.data() + done, out.size() - done);
      ASSERT_GT(n, 0);
      done += static_cast<size_t>(n);
    }
  }
  // Reads what the client sent and feeds it to the server (non-blocking read on a
  // blocking fd: poll first).
  void pump_server() {
    pollfd p{server_fd_, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) return;
    uint8_t buf[16384];
    ssize_t n = read(server_fd_, buf, sizeof buf);
    if (n > 0) server_->feed(buf, static_cast<size_t>(n));
  }
  bool handshake() {
    bool server_done = false, client_done = false;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    for (int i = 0; i < 200 && !(server_done && client_done) && Clock::now() < deadline; ++i) {
      if (!client_done) {
        int r = SSL_do_handshake(client_);
        if (r == 1) {
          client_done = true;
        } else if (SSL_get_error(client_, r) != SSL_ERROR_WANT_READ) {
          ADD_FAILURE() << "client handshake failed";
          return false;
        }
      }
      pump_server();
      if (!server_done) {
        std::error_code ec;
        auto step = server_->handshake(&ec);
        if (step == TlsRecord::Step::kFailed) {
          ADD_FAILURE() << "server handshake failed: " << ec.message();
          return false;
        }
        server_done = step == TlsRecord::Step::kDone;
      }
      flush_server();
    }
    return server_done && client_done;
  }
  // Reads and decrypts on the client until `size` plaintext bytes arrived or
  // the deadline passed, writing `rest` (records the server kept) to the
  // socket as room appears.
  std::vector<uint8_t> receive(size_t size, std::vector<uint8_t> rest = {}) {
    std::vector<uint8_t> got;
    size_t rest_done = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    std::vector<uint8_t> buf(65536);
    while (got.size() < size && Clock::now() < deadline) {
      if (rest_done < rest.size()) {
        ssize_t n = send(server_fd_, rest.data() + rest_done, rest.size() - rest_done,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) rest_done += static_cast<size_t>(n);
      }
      int r = SSL_read(client_, buf.data(), static_cast<int>(buf.size()));
      if (r > 0) {
        got.insert(got.end(), buf.begin(), buf.begin() + r);
      } else if (SSL_get_error(client_, r) == SSL_ERROR_WANT_READ) {
        pollfd p{client_fd_, POLLIN, 0};
        poll(&p, 1, 10);
      } else {
        ADD_FAILURE() << "client read failed";
        break;
      }
    }
    return got;
  }
  void shrink_send_buffer() {
    int size = 4096;  // the kernel doubles it; far below what is written
    ASSERT_EQ(setsockopt(server_fd_, SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
  }

  tlsframe::test::Pki pki_;
  int server_fd_ = -1;
  int client_fd_ = -1;
  tls::ContextPtr client_ctx_;
  std::unique_ptr<TlsRecord> server_;
  SSL *client_ = nullptr;
};

TEST_F(TlsRecordTest, RecordsTheSocketTakesAreNotKept) {
  const auto data = pattern(100 * 1000);  // fits loopback TCP's default buffers
  size_t sent = 0;
  ASSERT_FALSE(server_->encrypt_to(server_fd_, data.data(), data.size(), false, &sent));
  EXPECT_FALSE(server_->has_output());
  // Seven records: each adds a header, the content type and the tag.
  EXPECT_EQ(sent, data.size() + 7 * tlsframe::kRecordOverhead);
  EXPECT_EQ(receive(data.size()), data);
}

TEST_F(TlsRecordTest, WhatTheSocketDoesNotTakeIsKeptInOrder) {
  shrink_send_buffer();
  const auto data = pattern(1000 * 1000);
  size_t sent = 0;
  ASSERT_FALSE(server_->encrypt_to(server_fd_, data.data(), data.size(), false, &sent));
  EXPECT_GT(sent, 0u);            // the first records went to the socket
  EXPECT_LT(sent, data.size());   // the socket filled up
  ASSERT_TRUE(server_->has_output());
  std::vector<uint8_t> rest;
  server_->take_output(rest);
  const size_t records = (data.size() + tlsframe::kMaxRecordPayload - 1) / tlsframe::kMaxRecordPayload;
  EXPECT_EQ(sent + rest.size(), data.size() + records * tlsframe::kRecordOverhead);
  EXPECT_EQ(receive(data.size(), rest), data);
}

TEST_F(TlsRecordTest, EarlierOutputGoesFirst) {
  // Records made before (a KeyUpdate answer, say) and not yet written: nothing
  // may overtake them, so encrypt_to keeps everything after them.
  const auto first = pattern(1000);
  ASSERT_FALSE(server_->encrypt(first.data(), first.size()));
  ASSERT_TRUE(server_->has_output());
  const auto second = pattern(50 * 1000);
  size_t sent = 0;
  ASSERT_FALSE(server_->encrypt_to(server_fd_, second.data(), second.size(), false, &sent));
  EXPECT_EQ(sent, 0u);
  std::vector<uint8_t> rest;
  server_->take_output(rest);
  auto both = first;
  both.insert(both.end(), second.begin(), second.end());
  EXPECT_EQ(receive(both.size(), rest), both);
}

TEST_F(TlsRecordTest, ClosedPeerKeepsTheBytesForTheWriteToReport) {
  // The client resets the connection (linger 0); the server sees it on its next send.
  linger reset{1, 0};
  ASSERT_EQ(setsockopt(client_fd_, SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
  close(client_fd_);
  client_fd_ = socket(AF_INET, SOCK_STREAM, 0);  // TearDown closes something valid
  pollfd p{server_fd_, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);  // the reset arrived
  const auto data = pattern(20 * 1000);
  size_t sent = 0;
  ASSERT_FALSE(server_->encrypt_to(server_fd_, data.data(), data.size(), false, &sent));
  EXPECT_EQ(sent, 0u);
  EXPECT_TRUE(server_->has_output());  // the caller's write fails with EPIPE and reports it
}

}  // namespace
