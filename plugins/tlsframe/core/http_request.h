// One bounded HTTP/1.1 request from a browser (the browser front, ALPN
// http/1.1), parsed with the nodejs http-parser library (libhttp-parser).
// Bounded in bytes (request line and headers together) and in header count;
// a request with a body is refused (the front has no route that takes one).
// One request per connection: the parser stops after the first, and what
// follows it (WebSocket frames after an upgrade) is left to the caller.
//
// Threads: none of its own; one parser is used by one strand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tlsframe::http {

inline constexpr size_t kMaxRequestBytes = 8192;  // request line and headers, CRLFs included
inline constexpr size_t kMaxHeaders = 32;         // header fields

struct Request {
  std::string method;  // "GET", "HEAD", ... (http-parser's name for it)
  std::string target;  // as sent, e.g. "/watch/cam1?x=1"
  std::string path;    // target without query or fragment
  // Names lower-cased; values as sent (leading and trailing blanks removed).
  std::vector<std::pair<std::string, std::string>> headers;
  bool upgrade = false;  // http-parser saw an Upgrade request (Connection: upgrade + Upgrade)

  // The first header named `name` (lower-case), or nullptr.
  const std::string *header(std::string_view name) const;
};

class RequestParser {
 public:
  enum class Status {
    kNeedMore,  // all input taken; the request is not complete yet
    kComplete,  // request() is the request; `consumed` bytes of the last input belong to it
    kError,     // refused: http_status and error say why (the connection is answered and closed)
  };
  struct Result {
    Status status = Status::kNeedMore;
    size_t consumed = 0;  // of the bytes given to this feed()
    int http_status = 0;  // kError: 400 (malformed), 431 (too large, too many headers), 505
    std::string error;    // kError: for the log
  };

  explicit RequestParser(size_t max_bytes = kMaxRequestBytes, size_t max_headers = kMaxHeaders);
  ~RequestParser();
  RequestParser(const RequestParser &) = delete;
  RequestParser &operator=(const RequestParser &) = delete;

  // Feeds the next bytes. After kComplete or kError, returns the same
  // result again without reading anything.
  Result feed(const uint8_t *data, size_t size);
  const Request &request() const { return request_; }

 private:
  struct Impl;
  friend struct Impl;
  std::unique_ptr<Impl> impl_;
  Request request_;
  Result done_;  // set once complete or refused
  size_t max_bytes_, max_headers_;
  size_t total_ = 0;  // bytes fed so far
};

}  // namespace tlsframe::http
