// The TLS record layer of one server connection, driven by hand: OpenSSL
// reads from a memory BIO that the session feeds with what its socket read,
// and writes whole records either into an output buffer that the session
// hands to its socket with one async write, or (encrypt_to) straight into
// the socket while the kernel takes them, keeping only what it did not take.
// No executor: used by one strand only.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "core/result.h"
#include "core/tls_context.h"

namespace tlsframe {

// TLS plaintext per record, and what a TLS 1.3 record adds to it (header,
// inner content type, AEAD tag).
inline constexpr size_t kMaxRecordPayload = 16384;
inline constexpr size_t kRecordOverhead = 5 + 1 + 16;

class TlsRecord {
 public:
  explicit TlsRecord(const tls::ContextPtr &ctx);  // server side (accept state)
  ~TlsRecord();
  TlsRecord(const TlsRecord &) = delete;
  TlsRecord &operator=(const TlsRecord &) = delete;

  bool ok() const { return ssl_ != nullptr; }  // false: OpenSSL could not make the session

  enum class Step {
    kDone,      // the handshake is complete
    kWantRead,  // send output(), then feed() more bytes and call handshake() again
    kFailed,    // *ec says why; output() may hold an alert for the peer
  };
  Step handshake(std::error_code *ec);

  // Bytes read from the socket, for the next handshake() or read().
  void feed(const uint8_t *data, size_t size);
  struct Read {
    size_t size = 0;  // plaintext bytes written to the caller's buffer
    bool want_more =
        false;           // no whole record yet (output() may hold an answer, e.g. to a KeyUpdate)
    std::error_code ec;  // the peer closed (asio::error::eof) or TLS failed
  };
  Read read(uint8_t *buf, size_t capacity);

  // Encrypts size plaintext bytes into whole records appended to output().
  std::error_code encrypt(const uint8_t *data, size_t size);
  // As encrypt(), but each record goes to the connected stream socket `fd`
  // with a non-blocking send() as OpenSSL finishes it, from OpenSSL's own
  // buffer: no copy when the kernel takes it. From the first record (or part
  // of one) the kernel does not take, and whenever output() already holds
  // records, the rest is appended to output() instead, so the byte order on
  // the wire is kept; the caller writes output() as after encrypt(). Every
  // record but the last goes with MSG_MORE, so the kernel packs records into
  // full segments as it does one large write; `more`: the last too (the
  // caller sends more right after, and must end with more == false). A send
  // error is not reported here: the bytes stay in output() and the caller's
  // write reports it. *sent (added to) counts the bytes the kernel took.
  std::error_code encrypt_to(int fd, const uint8_t *data, size_t size, bool more, size_t *sent);

  bool has_output() const { return !out_.records.empty(); }
  // Moves the records produced so far into `out` (whose old contents, cleared,
  // become the new output buffer, keeping its capacity).
  void take_output(std::vector<uint8_t> &out);
  // `written` (a buffer from take_output, now on the wire) is reused as the
  // output buffer when none is building; `idle` gives its memory back.
  void recycle(std::vector<uint8_t> &written, bool idle);

  // The ALPN protocol selected in the handshake ("" = none: a version 1 client).
  std::string alpn() const;
  // Queues a close_notify alert into output() (once; later calls do nothing).
  // Returns true when there is output to send.
  bool shutdown();

  // A failure as the user reads it (the peer's verification result included).
  Error describe(const std::error_code &ec) const;
  std::string peer_subject() const;  // client certificate subject, "" when none
  SSL *native_handle() const { return ssl_.get(); }  // for peer certificate checks (read only)

  // What the write BIO writes to: `records`, or inside encrypt_to() the socket first.
  struct Output {
    std::vector<uint8_t> records;  // TLS records produced, not yet handed to the socket
    int fd = -1;                   // >= 0 only inside encrypt_to()
    int flags = 0;                 // send() flags for the record being made (MSG_MORE or 0)
    size_t sent = 0;               // bytes the socket took inside encrypt_to()
  };

 private:
  struct SslFree {
    void operator()(SSL *s) const { SSL_free(s); }
  };
  std::error_code failure(int rc) const;

  tls::ContextPtr ctx_;                // the context this session was made from
  std::unique_ptr<SSL, SslFree> ssl_;  // with its read (memory) and write (out_) BIOs
  Output out_;
};

}  // namespace tlsframe
