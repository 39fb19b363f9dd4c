#include "core/tls_record.h"

#include <openssl/bio.h>
#include <openssl/err.h>

#include <asio/error.hpp>
#include <asio/ssl/error.hpp>

namespace tlsframe {
namespace {

// A write-only BIO that appends everything OpenSSL writes (whole TLS records)
// to a std::vector<uint8_t>, so a session encrypts a whole message and hands
// it to the socket in one write, with no intermediate ring buffer.
int vector_bio_write(BIO *b, const char *data, size_t len, size_t *written) {
  auto *out = static_cast<std::vector<uint8_t> *>(BIO_get_data(b));
  out->insert(out->end(), reinterpret_cast<const uint8_t *>(data),
              reinterpret_cast<const uint8_t *>(data) + len);
  *written = len;
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
    BIO_set_data(wbio, &records_);
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

void TlsRecord::reserve_for(size_t plaintext) {
  const size_t records = plaintext / kMaxRecordPayload + 2;
  records_.reserve(records_.size() + plaintext + records * kRecordOverhead);
}

void TlsRecord::take_output(std::vector<uint8_t> &out) {
  out.swap(records_);
  records_.clear();
}

void TlsRecord::recycle(std::vector<uint8_t> &written, bool idle) {
  written.clear();
  if (records_.empty()) records_.swap(written);
  if (idle && records_.empty()) records_.shrink_to_fit();
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
    SSL_shutdown(ssl_.get());  // writes the alert into records_; the peer's is not awaited
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
