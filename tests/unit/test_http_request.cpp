// core/http_request: one bounded HTTP/1.1 request over libhttp-parser.
#include <gtest/gtest.h>

#include <string>

#include "core/http_request.h"

namespace tlsframe::http {
namespace {

using Status = RequestParser::Status;

RequestParser::Result feed(RequestParser &p, const std::string &s) {
  return p.feed(reinterpret_cast<const uint8_t *>(s.data()), s.size());
}

TEST(HttpRequest, ParsesAGetWithHeadersLowerCasedAndTrimmed) {
  RequestParser p;
  const std::string req =
      "GET /watch/cam1?x=1 HTTP/1.1\r\nHost: example:9999\r\nX-Thing:  a b \r\n\r\n";
  const auto r = feed(p, req);
  ASSERT_EQ(r.status, Status::kComplete) << r.error;
  EXPECT_EQ(r.consumed, req.size());
  EXPECT_EQ(p.request().method, "GET");
  EXPECT_EQ(p.request().target, "/watch/cam1?x=1");
  EXPECT_EQ(p.request().path, "/watch/cam1");
  ASSERT_NE(p.request().header("host"), nullptr);
  EXPECT_EQ(*p.request().header("host"), "example:9999");
  EXPECT_EQ(*p.request().header("x-thing"), "a b");
  EXPECT_FALSE(p.request().upgrade);
}

TEST(HttpRequest, ARequestSplitByteByByteParsesTheSame) {
  RequestParser p;
  const std::string req = "HEAD / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n";
  for (size_t i = 0; i + 1 < req.size(); ++i) {
    ASSERT_EQ(feed(p, req.substr(i, 1)).status, Status::kNeedMore) << i;
  }
  const auto r = feed(p, req.substr(req.size() - 1));
  ASSERT_EQ(r.status, Status::kComplete);
  EXPECT_EQ(p.request().method, "HEAD");
  EXPECT_EQ(*p.request().header("accept"), "*/*");
}

TEST(HttpRequest, AnUpgradeStopsAtTheHeadersAndLeavesWhatFollows) {
  RequestParser p;
  const std::string req =
      "GET /watch/ HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  const auto r = feed(p, req + "\x82\x80");
  ASSERT_EQ(r.status, Status::kComplete);
  EXPECT_EQ(r.consumed, req.size());
  EXPECT_TRUE(p.request().upgrade);
}

TEST(HttpRequest, OnlyOneRequestIsRead) {
  RequestParser p;
  const std::string one = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  const auto r = feed(p, one + one);
  ASSERT_EQ(r.status, Status::kComplete);
  EXPECT_EQ(r.consumed, one.size());
  EXPECT_EQ(feed(p, one).consumed, 0u);  // done: reads nothing more
}

TEST(HttpRequest, OversizedHeadersAreRefusedWith431AtTheBound) {
  RequestParser p(1024, 32);
  const std::string start = "GET / HTTP/1.1\r\nX: " + std::string(2000, 'a');
  const auto r = feed(p, start);
  ASSERT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.http_status, 431);
}

TEST(HttpRequest, ARequestNeverEndingIsRefusedOnceItReachesTheBound) {
  RequestParser p(256, 32);
  std::string line = "GET / HTTP/1.1\r\n";
  auto r = feed(p, line);
  for (int i = 0; i < 100 && r.status == Status::kNeedMore; ++i) r = feed(p, "X: y\r\n");
  ASSERT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.http_status, 431);
}

TEST(HttpRequest, HeadersReachingTheBoundExactlyAre431NotMalformed) {
  RequestParser p(64, 32);
  const std::string start = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a');
  for (size_t i = 0; i < 64; i += 16)
    ASSERT_EQ(feed(p, start.substr(i, 16)).status, Status::kNeedMore);
  const auto r = feed(p, start.substr(64, 16));
  ASSERT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.http_status, 431);
}

TEST(HttpRequest, TooManyHeadersAreRefusedWith431) {
  RequestParser p(8192, 4);
  const auto r = feed(p, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
  ASSERT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.http_status, 431);
}

TEST(HttpRequest, ABodyIsRefused) {
  RequestParser p;
  auto r = feed(p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(r.status, Status::kError);
  RequestParser q;
  r = feed(q, "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, Status::kError);
}

TEST(HttpRequest, OtherMethodsParseForThe405) {
  RequestParser p;
  const auto r = feed(p, "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(r.status, Status::kComplete);
  EXPECT_EQ(p.request().method, "DELETE");
}

TEST(HttpRequest, GarbageAndOldVersionsAreRefused) {
  RequestParser a;
  auto r = feed(a, "\x16\x03\x01 hello\r\n\r\n");
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.http_status, 400);
  RequestParser b;
  r = feed(b, "GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.http_status, 505);
  RequestParser c;
  r = feed(c, "GET / HTTP/1.1\r\nBad Header\r\n\r\n");
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(feed(c, "more").status, Status::kError);  // stays refused
}

}  // namespace
}  // namespace tlsframe::http
