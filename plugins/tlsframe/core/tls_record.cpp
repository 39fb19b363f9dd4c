#include "core/tls_record.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include <asio/error.hpp>
#include <asio/ssl/error.hpp>

namespace tlsframe {
namespace {

// A write-only BIO for what OpenSSL writes (whole TLS records, one call per
// record). Outside encrypt_to() it appends them to a vector, which the
// session hands to its socket in one write. Inside, it sends each record to
// the socket from OpenSSL's buffer while the kernel takes it whole, and
// appends from the first byte it does not take. It never refuses a byte, so
// SSL_write never sees a partial write.
int vector_bio_write(BIO *b, const char *data, size_t len, size_t *written) {
  auto *out = static_cast<TlsRecord::Output *>(BIO_get_data(b));
  auto *p = reinterpret_cast<const uint8_t *>(data);
  *written = len;
  if (out->fd >= 0 && out->records.empty()) {
    ssize_t n;
    do {
      n = ::send(out->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL | out->flags);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      out->sent += static_cast<size_t>(n);
      p += n;
      len -= static_cast<size_t>(n);
    }
    if (len == 0) return 1;
  }
  out->records.insert(out->records.end(), p, p + len);
  return 1;
}

long vector_bio_ctrl(BIO *, int cmd, long, void *) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int vector_bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD *vector_bio_method() {
  static BIO_METHOD *method = [] {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tlsframe-vector");
    if (m) {
      BIO_meth_set_write_ex(m, vector_bio_write);
      BIO_meth_set_ctrl(m, vector_bio_ctrl);
      BIO_meth_set_create(m, vector_bio_create);
    }
    return m;
  }();
  return method;
}

}  // namespace

TlsRecord::TlsRecord(const tls::ContextPtr &ctx) : ctx_(ctx), ssl_(SSL_new(ctx_->native_handle())) {
  BIO *rbio = BIO_new(BIO_s_mem());
  BIO *wbio = BIO_new(vector_bio_method());
  if (ssl_ && rbio && wbio) {
    BIO_set_data(wbio, &out_);
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(ssl_.get(), rbio, wbio);
    SSL_set_accept_state(ssl_.get());
  } else {
    BIO_free(rbio);
    BIO_free(wbio);
    ssl_.reset();
  }
}

TlsRecord::~TlsRecord() = default;

// The error OpenSSL reports for a failed call, as asio would report it, so
// tls::describe_failure() reads it the same way for every path.
std::error_code TlsRecord::failure(int rc) const {
  int err = SSL_get_error(ssl_.get(), rc);
  if (err == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  unsigned long code = ERR_peek_error();
  if (code != 0) {
    ERR_get_error();
    return std::error_code(static_cast<int>(code), asio::error::get_ssl_category());
  }
  return asio::ssl::error::stream_truncated;
}

TlsRecord::Step TlsRecord::handshake(std::error_code *ec) {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) return Step::kDone;
  if (SSL_get_error(ssl_.get(), rc) == SSL_ERROR_WANT_READ) return Step::kWantRead;
  *ec = failure(rc);
  return Step::kFailed;
}

void TlsRecord::feed(const uint8_t *data, size_t size) {
  BIO_write(SSL_get_rbio(ssl_.get()), data, static_cast<int>(size));
}

TlsRecord::Read TlsRecord::read(uint8_t *buf, size_t capacity) {
  Read r;
  ERR_clear_error();
  int rc = SSL_read(ssl_.get(), buf, static_cast<int>(capacity));
  if (rc > 0) {
    r.size = static_cast<size_t>(rc);
  } else if (SSL_get_error(ssl_.get(), rc) == SSL_ERROR_WANT_READ) {
    r.want_more = true;
  } else {
    r.ec = failure(rc);
  }
  return r;
}

std::error_code TlsRecord::encrypt(const uint8_t *data, size_t size) {
  ERR_clear_error();
  size_t written = 0;
  if (SSL_write_ex(ssl_.get(), data, size, &written) != 1) return failure(0);
  return {};
}

std::error_code TlsRecord::encrypt_to(int fd, const uint8_t *data, size_t size, bool more,
                                      size_t *sent) {
  out_.fd = fd;
  out_.sent = 0;
  std::error_code ec;
  // One SSL_write per record's worth of plaintext, so that the flags of the
  // records it makes (one, or more with a negotiated max_fragment_length)
  // say whether plaintext follows.
  while (size > 0 && !ec) {
    const size_t n = std::min(size, kMaxRecordPayload);
    out_.flags = n < size || more ? MSG_MORE : 0;
    ec = encrypt(data, n);
    data += n;
    size -= n;
  }
  out_.fd = -1;
  out_.flags = 0;
  *sent += out_.sent;
  return ec;
}

void TlsRecord::take_output(std::vector<uint8_t> &out) {
  out.swap(out_.records);
  out_.records.clear();
}

void TlsRecord::recycle(std::vector<uint8_t> &written, bool idle) {
  written.clear();
  if (out_.records.empty()) out_.records.swap(written);
  if (idle && out_.records.empty()) out_.records.shrink_to_fit();
}

std::string TlsRecord::alpn() const {
  const unsigned char *proto = nullptr;
  unsigned int size = 0;
  SSL_get0_alpn_selected(ssl_.get(), &proto, &size);
  return proto ? std::string(reinterpret_cast<const char *>(proto), size) : std::string();
}

bool TlsRecord::shutdown() {
  if ((SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN) == 0) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());  // writes the alert into out_.records; the peer's is not awaited
    ERR_clear_error();
  }
  return has_output();
}

Error TlsRecord::describe(const std::error_code &ec) const {
  return tls::describe_failure(ssl_.get(), ec, false);
}

std::string TlsRecord::peer_subject() const {
  return tls::peer_subject(ssl_.get());
}

}  // namespace tlsframe
