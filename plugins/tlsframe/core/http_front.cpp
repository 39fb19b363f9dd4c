// The browser front's routes and responses. Responses are built whole
// (headers and body) for one write; pages are small.
#include "core/http_front.h"

#include <openssl/evp.h>

#include <cstdio>

#include "core/viewer_page.h"
#include "core/websocket.h"

namespace tlsframe::http {
namespace {

const char *reason_phrase(int status) {
  switch (status) {
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

std::string sha256_source(const char *text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  std::string s(text);
  if (EVP_Digest(s.data(), s.size(), digest, &size, EVP_sha256(), nullptr) != 1) return "";
  unsigned char b64[64];
  const int n = EVP_EncodeBlock(b64, digest, static_cast<int>(size));
  return "'sha256-" + std::string(reinterpret_cast<const char *>(b64), n > 0 ? n : 0) + "'";
}

// Status line and the headers every response has.
std::string head(int status, std::string_view type) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  if (!type.empty()) h += "Content-Type: " + std::string(type) + "\r\n";
  h += "Content-Security-Policy: " + content_security_policy() + "\r\n";
  h += "X-Content-Type-Options: nosniff\r\n";
  h += "Cache-Control: no-store\r\n";
  h += "Referrer-Policy: no-referrer\r\n";
  h += "X-Frame-Options: DENY\r\n";
  return h;
}

std::vector<uint8_t> whole(int status, std::string_view type, const std::string &body, bool is_head,
                           std::string_view extra = {}) {
  std::string r = head(status, type);
  r += extra;
  r += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (!is_head) r += body;
  return std::vector<uint8_t>(r.begin(), r.end());
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F || c == '<' || c == '>' || c == '&') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string watch_path(const std::string &name) {
  return "/watch/" + name;
}

std::string viewer_page(const std::string &name) {
  // Names are valid_stream_name() ([A-Za-z0-9._-]); escaped anyway.
  return std::string(
             "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             "<meta name=\"viewport\" content=\"width=device-width\">"
             "<title>tlsframe ") +
         html_escape(name) + "</title><style>" + page::kStyle +
         "</style></head>\n<body data-stream=\"" + html_escape(name) +
         "\"><header><span id=\"name\"></span><span id=\"info\">connecting</span>"
         "<select id=\"rendition\" hidden aria-label=\"rendition\"></select></header>"
         "<canvas id=\"video\" width=\"640\" height=\"360\"></canvas><script>" +
         page::kScript + "</script></body></html>\n";
}

std::string list_page(const std::vector<wire::StreamSummary> &streams) {
  std::string b = std::string(
                      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<title>tlsframe streams</title><style>") +
                  page::kStyle +
                  "</style></head><body><header><span id=\"name\">Streams</span></header><ul>";
  for (const auto &s : streams) {
    const std::string shown = s.name.empty() ? "(default stream)" : s.name;
    b += "<li><a href=\"" + html_escape(watch_path(s.name)) + "\">" + html_escape(shown) + "</a> " +
         html_escape(s.caps) + " · " + std::to_string(s.viewers) + " watching";
    if (!s.renditions.empty()) {
      b += " · renditions";
      for (size_t i = 0; i < s.renditions.size(); ++i) {
        b += (i == 0 ? " " : ", ") + html_escape(s.renditions[i].name);
      }
    }
    if (is_jpeg(s.caps)) {
      b += " · <a href=\"/mjpeg/" + html_escape(s.name) + "\">MJPEG</a>";
    }
    b += "</li>";
  }
  if (streams.empty()) b += "<li>no streams</li>";
  b += "</ul></body></html>\n";
  return b;
}

const wire::StreamSummary *find(const std::vector<wire::StreamSummary> &streams,
                                const std::string &name) {
  for (const auto &s : streams) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

constexpr std::string_view kHtml = "text/html; charset=utf-8";

}  // namespace

bool is_jpeg(std::string_view caps) {
  return caps.substr(0, 10) == "image/jpeg" && (caps.size() == 10 || caps[10] == ' ');
}

const std::string &content_security_policy() {
  static const std::string csp =
      "default-src 'none'; script-src " + sha256_source(page::kScript) + "; style-src " +
      sha256_source(page::kStyle) +
      "; img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
      "frame-ancestors 'none'";
  return csp;
}

const std::string &mjpeg_part_separator() {
  static const std::string sep =
      "\r\n--" + std::string(kMjpegBoundary) + "\r\nContent-Type: image/jpeg\r\n\r\n";
  return sep;
}

std::vector<uint8_t> error_response(int status, std::string_view text, bool is_head) {
  std::string extra;
  if (status == 405) extra = "Allow: GET, HEAD\r\n";
  if (status == 426) extra = "Sec-WebSocket-Version: 13\r\n";
  return whole(
      status, "text/plain; charset=utf-8",
      std::to_string(status) + " " + reason_phrase(status) + ": " + std::string(text) + "\n",
      is_head, extra);
}

std::string streams_json(const std::vector<wire::StreamSummary> &streams) {
  std::string j = "{\"streams\":[";
  bool first = true;
  for (const auto &s : streams) {
    if (!first) j += ",";
    first = false;
    j += "{\"name\":\"" + json_escape(s.name) + "\",\"caps\":\"" + json_escape(s.caps) +
         "\",\"viewers\":" + std::to_string(s.viewers) + ",\"watch\":\"" +
         json_escape(watch_path(s.name)) + "\"";
    if (is_jpeg(s.caps)) j += ",\"mjpeg\":\"/mjpeg/" + json_escape(s.name) + "\"";
    if (!s.renditions.empty()) {
      j += ",\"renditions\":[";
      for (size_t i = 0; i < s.renditions.size(); ++i) {
        if (i > 0) j += ",";
        j += "{\"name\":\"" + json_escape(s.renditions[i].name) +
             "\",\"viewers\":" + std::to_string(s.renditions[i].viewers) + "}";
      }
      j += "]";
    }
    j += "}";
  }
  j += "]}\n";
  return j;
}

Route route(const Request &r, const std::vector<wire::StreamSummary> &streams) {
  Route out;
  const bool is_head = r.method == "HEAD";
  auto fail = [&](int status, std::string why) {
    out.action = Action::kRespond;
    out.status = status;
    out.response = error_response(status, why, is_head);
    out.error = std::move(why);
    return out;
  };
  if (r.method != "GET" && !is_head) return fail(405, "only GET and HEAD");
  const std::string &path = r.path;
  if (path == "/") {
    if (streams.size() == 1) {
      out.response = whole(200, kHtml, viewer_page(streams[0].name), is_head);
    } else {
      out.response = whole(200, kHtml, list_page(streams), is_head);
    }
    return out;
  }
  if (path == "/streams.json") {
    out.response = whole(200, "application/json", streams_json(streams), is_head);
    return out;
  }
  static const std::string kWatch = "/watch/", kMjpeg = "/mjpeg/";
  if (path.compare(0, kWatch.size(), kWatch) == 0) {
    const std::string name = path.substr(kWatch.size());
    if (!name.empty() && !wire::valid_stream_name(name)) return fail(404, "no such stream");
    if (!find(streams, name)) return fail(404, "no such stream");
    if (!r.header("upgrade")) {
      out.response = whole(200, kHtml, viewer_page(name), is_head);
      return out;
    }
    const ws::UpgradeCheck c = ws::check_upgrade(r);
    if (!c.ok) return fail(c.http_status, c.error);
    std::string h = head(101, "");
    h += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + c.accept +
         "\r\n\r\n";
    out.action = Action::kWebSocket;
    out.status = 101;
    out.stream = name;
    out.response.assign(h.begin(), h.end());
    return out;
  }
  if (path.compare(0, kMjpeg.size(), kMjpeg) == 0) {
    const std::string name = path.substr(kMjpeg.size());
    if (!name.empty() && !wire::valid_stream_name(name)) return fail(404, "no such stream");
    const wire::StreamSummary *s = find(streams, name);
    if (!s) return fail(404, "no such stream");
    if (!is_jpeg(s->caps)) return fail(404, "not a JPEG stream");
    std::string h = head(200, "multipart/x-mixed-replace; boundary=" + std::string(kMjpegBoundary));
    h += "Connection: close\r\n\r\n";
    if (is_head) {
      out.response.assign(h.begin(), h.end());
      return out;
    }
    // The first part's headers at once; every JPEG is followed by the next's.
    h += "--" + std::string(kMjpegBoundary) + "\r\nContent-Type: image/jpeg\r\n\r\n";
    out.action = Action::kMjpeg;
    out.stream = name;
    out.response.assign(h.begin(), h.end());
    return out;
  }
  return fail(404, "no such page");
}

}  // namespace tlsframe::http
