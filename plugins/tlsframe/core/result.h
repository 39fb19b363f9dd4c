// Error values returned by the core. The core never throws across a C
// callback; the GStreamer glue converts an Error into one GST_ELEMENT_ERROR.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace tlsframe {

// What went wrong, in words for a user, plus technical detail (OpenSSL queue).
struct Error {
  enum class Kind {
    kSettings,     // bad configuration (missing file, bad key, bad value)
    kNetwork,      // resolve/connect/bind/accept/read/write failed
    kTls,          // TLS handshake or record layer failure (not verification)
    kVerify,       // the peer's certificate was refused (chain, name, dates)
    kPeerRefused,  // the peer refused us (our client certificate, protocol version)
    kNotFound,     // the peer has no such stream (or, a version 1 server, no named streams)
    kBusy,         // the peer is at capacity (server full); trying again later may work
    kProtocol,     // the peer sent bytes that are not valid tlsframe protocol
    kTimeout,      // a deadline passed
    kCancelled,    // cancel() was called; not an error for users
    kClosed,       // the peer closed the connection
  };
  Kind kind = Kind::kNetwork;
  std::string message;  // one line for a person
  std::string detail;   // technical detail (OpenSSL error queue, errno text)
};

// Either a value or an Error.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  T &value() { return *value_; }
  const T &value() const { return *value_; }
  T &operator*() { return *value_; }
  T *operator->() { return &*value_; }
  const Error &error() const { return error_; }

 private:
  std::optional<T> value_;
  Error error_;
};

// Success or an Error.
class Status {
 public:
  Status() = default;
  Status(Error error)
      : failed_(true), error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  static Status Ok() { return Status(); }
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error &error() const { return error_; }

 private:
  bool failed_ = false;
  Error error_;
};

}  // namespace tlsframe
