// core/http_front: the browser front's fixed routes and their headers.
#include <gtest/gtest.h>

#include <string>

#include "core/http_front.h"

namespace tlsframe::http {
namespace {

Request get(const std::string &path, const std::string &method = "GET") {
  Request r;
  r.method = method;
  r.target = path;
  r.path = path;
  r.headers = {{"host", "h:1"}};
  return r;
}

std::string text(const Route &r) {
  return std::string(r.response.begin(), r.response.end());
}

const std::vector<wire::StreamSummary> kTwo = {{"cam1", "video/x-h264 1280x720 30/1", 2},
                                               {"door", "image/jpeg 640x480 15/1", 0}};

void expect_security_headers(const std::string &response) {
  EXPECT_NE(response.find("\r\nContent-Security-Policy: default-src 'none'; script-src 'sha256-"),
            std::string::npos);
  EXPECT_NE(response.find("\r\nX-Content-Type-Options: nosniff\r\n"), std::string::npos);
  EXPECT_NE(response.find("\r\nCache-Control: no-store\r\n"), std::string::npos);
}

TEST(HttpFront, EveryResponseCarriesTheSecurityHeaders) {
  for (const char *path : {"/", "/streams.json", "/watch/cam1", "/mjpeg/door", "/nope",
                           "/watch/nope", "/mjpeg/cam1"}) {
    SCOPED_TRACE(path);
    expect_security_headers(text(route(get(path), kTwo)));
  }
  expect_security_headers(text(route(get("/", "POST"), kTwo)));
  const std::vector<uint8_t> slow = error_response(408, "slow");
  expect_security_headers(std::string(slow.begin(), slow.end()));
}

TEST(HttpFront, FixedRoutesOnly404Otherwise405ForOtherMethods) {
  EXPECT_EQ(route(get("/"), kTwo).status, 200);
  EXPECT_EQ(route(get("/streams.json"), kTwo).status, 200);
  EXPECT_EQ(route(get("/watch/cam1"), kTwo).status, 200);
  EXPECT_EQ(route(get("/watch/cam9"), kTwo).status, 404);
  EXPECT_EQ(route(get("/watch/../etc/passwd"), kTwo).status, 404);
  EXPECT_EQ(route(get("/index.html"), kTwo).status, 404);
  EXPECT_EQ(route(get("/mjpeg/cam1"), kTwo).status, 404);  // not JPEG
  const Route post = route(get("/", "POST"), kTwo);
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(text(post).find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(route(get("/", "OPTIONS"), kTwo).status, 405);
}

TEST(HttpFront, TheIndexListsStreamsOrPlaysTheOnlyOne) {
  const std::string list = text(route(get("/"), kTwo));
  EXPECT_NE(list.find("href=\"/watch/cam1\""), std::string::npos);
  EXPECT_NE(list.find("href=\"/mjpeg/door\""), std::string::npos);
  const std::string one = text(route(get("/"), {kTwo[0]}));
  EXPECT_NE(one.find("data-stream=\"cam1\""), std::string::npos);
  EXPECT_NE(one.find("<canvas"), std::string::npos);
}

TEST(HttpFront, StreamsJsonHasNamesCapsAndViewers) {
  const std::string body = streams_json(kTwo);
  EXPECT_EQ(body,
            "{\"streams\":[{\"name\":\"cam1\",\"caps\":\"video/x-h264 1280x720 30/1\","
            "\"viewers\":2,\"watch\":\"/watch/cam1\"},{\"name\":\"door\",\"caps\":"
            "\"image/jpeg 640x480 15/1\",\"viewers\":0,\"watch\":\"/watch/door\","
            "\"mjpeg\":\"/mjpeg/door\"}]}\n");
  EXPECT_EQ(streams_json({{"", "a\"b<c>\x01", 0}}),
            "{\"streams\":[{\"name\":\"\",\"caps\":\"a\\\"b\\u003cc\\u003e\\u0001\",\"viewers\":0,"
            "\"watch\":\"/watch/\"}]}\n");
}

// A stream with renditions: /streams.json lists them (highest first, with
// their viewers), the index names them; a stream without has no such key.
TEST(HttpFront, StreamsJsonListsRenditionsWithTheirViewers) {
  wire::StreamSummary cam{"cam", "video/x-h264 320x240 30/1", 3};
  cam.renditions = {{"high", 2}, {"low", 1}};
  EXPECT_EQ(streams_json({cam}),
            "{\"streams\":[{\"name\":\"cam\",\"caps\":\"video/x-h264 320x240 30/1\","
            "\"viewers\":3,\"watch\":\"/watch/cam\",\"renditions\":[{\"name\":\"high\","
            "\"viewers\":2},{\"name\":\"low\",\"viewers\":1}]}]}\n");
  EXPECT_EQ(streams_json(kTwo).find("renditions"), std::string::npos);
  const std::string list = text(route(get("/"), {cam, kTwo[1]}));
  EXPECT_NE(list.find("renditions high, low"), std::string::npos) << list;
  // The viewer page has the (hidden until a notice) rendition <select>.
  EXPECT_NE(text(route(get("/watch/cam"), {cam})).find("<select id=\"rendition\" hidden"),
            std::string::npos);
}

TEST(HttpFront, HeadSendsTheHeadersWithoutTheBody) {
  const std::string h = text(route(get("/streams.json", "HEAD"), kTwo));
  EXPECT_EQ(h.substr(h.size() - 4), "\r\n\r\n");
  EXPECT_NE(h.find("Content-Length: " + std::to_string(streams_json(kTwo).size())),
            std::string::npos);
}

TEST(HttpFront, AWebSocketUpgradeOnAWatchPathStreams) {
  Request r = get("/watch/cam1");
  r.upgrade = true;
  r.headers = {{"host", "h:1"},
               {"upgrade", "websocket"},
               {"connection", "Upgrade"},
               {"sec-websocket-version", "13"},
               {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
               {"origin", "https://h:1"}};
  Route ok = route(r, kTwo);
  EXPECT_EQ(ok.action, Action::kWebSocket);
  EXPECT_EQ(ok.stream, "cam1");
  EXPECT_EQ(text(ok).rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u);
  EXPECT_NE(text(ok).find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            std::string::npos);
  r.headers.back().second = "https://evil.example";
  EXPECT_EQ(route(r, kTwo).status, 403);
  EXPECT_EQ(route(r, kTwo).action, Action::kRespond);
}

TEST(HttpFront, MjpegStartsWithTheFirstPartsHeaders) {
  const Route r = route(get("/mjpeg/door"), kTwo);
  ASSERT_EQ(r.action, Action::kMjpeg);
  const std::string t = text(r);
  EXPECT_NE(t.find("Content-Type: multipart/x-mixed-replace; boundary=tlsframe-jpeg\r\n"),
            std::string::npos);
  const std::string first = "\r\n\r\n--tlsframe-jpeg\r\nContent-Type: image/jpeg\r\n\r\n";
  EXPECT_EQ(t.substr(t.size() - first.size()), first);
  EXPECT_EQ(mjpeg_part_separator(), "\r\n--tlsframe-jpeg\r\nContent-Type: image/jpeg\r\n\r\n");
}

}  // namespace
}  // namespace tlsframe::http
