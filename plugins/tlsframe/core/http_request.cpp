// One bounded HTTP/1.1 request, over libhttp-parser's callbacks. The
// callbacks may be called with pieces of a name or value (a request split
// over several reads): pieces are appended until the other kind starts.
#include "core/http_request.h"

#include <http_parser.h>

#include <algorithm>
#include <cctype>
#include <climits>

namespace tlsframe::http {

const std::string *Request::header(std::string_view name) const {
  for (const auto &h : headers) {
    if (h.first == name) return &h.second;
  }
  return nullptr;
}

struct RequestParser::Impl {
  http_parser parser{};
  http_parser_settings settings{};
  RequestParser *owner = nullptr;
  bool in_value = false;  // the last header callback was a value
  bool too_many = false;  // over max_headers
  bool has_body = false;  // Content-Length > 0 or chunked: refused
  bool complete = false;  // on_message_complete ran

  static Impl &of(http_parser *p) { return *static_cast<Impl *>(p->data); }

  static int on_url(http_parser *p, const char *at, size_t n) {
    of(p).owner->request_.target.append(at, n);
    return 0;
  }
  static int on_header_field(http_parser *p, const char *at, size_t n) {
    Impl &self = of(p);
    auto &headers = self.owner->request_.headers;
    if (headers.empty() || self.in_value) {
      if (headers.size() >= self.owner->max_headers_) {
        self.too_many = true;
        return 1;
      }
      headers.emplace_back();
      self.in_value = false;
    }
    std::string &name = headers.back().first;
    for (size_t i = 0; i < n; ++i) {
      name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(at[i]))));
    }
    return 0;
  }
  static int on_header_value(http_parser *p, const char *at, size_t n) {
    Impl &self = of(p);
    self.in_value = true;
    self.owner->request_.headers.back().second.append(at, n);
    return 0;
  }
  static int on_headers_complete(http_parser *p) {
    Impl &self = of(p);
    Request &r = self.owner->request_;
    r.method = http_method_str(static_cast<http_method>(p->method));
    r.upgrade = p->upgrade != 0;
    if ((p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX)) {
      self.has_body = true;  // refused by feed() as soon as the headers are in
    }
    return 0;
  }
  static int on_message_complete(http_parser *p) {
    of(p).complete = true;
    http_parser_pause(p, 1);  // one request per connection: what follows is not ours
    return 0;
  }
};

namespace {

std::string trim(std::string s) {
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && blank(s.back())) s.pop_back();
  size_t i = 0;
  while (i < s.size() && blank(s[i])) ++i;
  return s.substr(i);
}

}  // namespace

RequestParser::RequestParser(size_t max_bytes, size_t max_headers)
    : impl_(std::make_unique<Impl>()), max_bytes_(max_bytes), max_headers_(max_headers) {
  http_parser_init(&impl_->parser, HTTP_REQUEST);
  impl_->parser.data = impl_.get();
  impl_->owner = this;
  http_parser_settings_init(&impl_->settings);
  impl_->settings.on_url = &Impl::on_url;
  impl_->settings.on_header_field = &Impl::on_header_field;
  impl_->settings.on_header_value = &Impl::on_header_value;
  impl_->settings.on_headers_complete = &Impl::on_headers_complete;
  impl_->settings.on_message_complete = &Impl::on_message_complete;
}

RequestParser::~RequestParser() = default;

RequestParser::Result RequestParser::feed(const uint8_t *data, size_t size) {
  if (done_.status != Status::kNeedMore) {
    Result again = done_;
    again.consumed = 0;
    return again;
  }
  auto refuse = [this](int status, std::string why) {
    done_.status = Status::kError;
    done_.http_status = status;
    done_.error = std::move(why);
    done_.consumed = 0;
    return done_;
  };
  // Only the bytes that fit the bound are parsed: a request that has not
  // ended within max_bytes_ is refused, whatever follows.
  const size_t room = max_bytes_ - total_;
  // (A zero-length execute would mean end of input to http-parser, not "nothing new".)
  if (room == 0 && size > 0) {
    return refuse(431, "request over " + std::to_string(max_bytes_) + " bytes");
  }
  if (size == 0) return Result{};
  const size_t n = std::min(size, room);
  const size_t parsed = http_parser_execute(&impl_->parser, &impl_->settings,
                                            reinterpret_cast<const char *>(data), n);
  total_ += parsed;
  if (impl_->too_many) return refuse(431, "more than " + std::to_string(max_headers_) + " headers");
  if (impl_->has_body) return refuse(400, "a request with a body");
  const http_errno err = HTTP_PARSER_ERRNO(&impl_->parser);
  const bool complete = impl_->complete || impl_->parser.upgrade;
  if (!complete && err != HPE_OK) {
    if (err == HPE_HEADER_OVERFLOW) return refuse(431, "request headers too large");
    if (err == HPE_INVALID_VERSION) return refuse(505, "HTTP version not supported");
    return refuse(400, std::string("malformed request: ") + http_errno_description(err));
  }
  if (!complete) {
    if (parsed == n && n == size) return Result{};  // took everything, wants more
    if (total_ >= max_bytes_) {
      return refuse(431, "request over " + std::to_string(max_bytes_) + " bytes");
    }
    return refuse(400, "malformed request");
  }
  if (impl_->parser.http_major != 1 || impl_->parser.http_minor != 1) {
    return refuse(505, "only HTTP/1.1 is served");
  }
  for (auto &h : request_.headers) h.second = trim(std::move(h.second));
  const std::string &t = request_.target;
  request_.path = t.substr(0, std::min(t.find('?'), t.find('#')));
  done_.status = Status::kComplete;
  done_.consumed = parsed;
  return done_;
}

}  // namespace tlsframe::http
