// core/websocket: the upgrade check, the accept key, server frames and the
// client frame decoder (masked, small, unfragmented control and binary only).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/websocket.h"

namespace tlsframe::ws {
namespace {

using Status = FrameDecoder::Status;

http::Request upgrade_request() {
  http::Request r;
  r.method = "GET";
  r.path = "/watch/cam1";
  r.upgrade = true;
  r.headers = {{"host", "cam.example:9999"},
               {"upgrade", "websocket"},
               {"connection", "keep-alive, Upgrade"},
               {"sec-websocket-version", "13"},
               {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
               {"origin", "https://cam.example:9999"}};
  return r;
}

void set(http::Request &r, const std::string &name, const std::string &value) {
  for (auto &h : r.headers) {
    if (h.first == name) h.second = value;
  }
}

// A masked client frame.
std::vector<uint8_t> client_frame(uint8_t b0, const std::vector<uint8_t> &payload,
                                  bool masked = true) {
  std::vector<uint8_t> f{b0};
  const uint8_t m = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(m | static_cast<uint8_t>(payload.size()));
  } else {
    f.push_back(m | 126);
    f.push_back(static_cast<uint8_t>(payload.size() >> 8));
    f.push_back(static_cast<uint8_t>(payload.size()));
  }
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (masked) f.insert(f.end(), key, key + 4);
  for (size_t i = 0; i < payload.size(); ++i) f.push_back(payload[i] ^ (masked ? key[i % 4] : 0));
  return f;
}

TEST(WebSocket, AcceptKeyIsTheRfcExample) {
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocket, ASameOriginUpgradeIsAccepted) {
  const UpgradeCheck c = check_upgrade(upgrade_request());
  ASSERT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocket, BadUpgradesAreRefused) {
  auto r = upgrade_request();
  set(r, "origin", "https://evil.example");
  EXPECT_EQ(check_upgrade(r).http_status, 403);
  r = upgrade_request();
  set(r, "origin", "http://cam.example:9999");  // not https
  EXPECT_EQ(check_upgrade(r).http_status, 403);
  r = upgrade_request();
  r.headers.pop_back();  // no Origin
  EXPECT_EQ(check_upgrade(r).http_status, 403);
  r = upgrade_request();
  set(r, "sec-websocket-version", "8");
  EXPECT_EQ(check_upgrade(r).http_status, 426);
  r = upgrade_request();
  set(r, "sec-websocket-key", "short");
  EXPECT_EQ(check_upgrade(r).http_status, 400);
  r = upgrade_request();
  set(r, "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=!");
  EXPECT_EQ(check_upgrade(r).http_status, 400);
  r = upgrade_request();
  set(r, "upgrade", "h2c");
  EXPECT_EQ(check_upgrade(r).http_status, 400);
  r = upgrade_request();
  r.method = "POST";
  EXPECT_EQ(check_upgrade(r).http_status, 400);
}

TEST(WebSocket, ServerFramesAreUnmaskedWithTheShortestLength) {
  EXPECT_EQ(frame_header(Opcode::kBinary, 5), (std::vector<uint8_t>{0x82, 5}));
  EXPECT_EQ(frame_header(Opcode::kText, 126), (std::vector<uint8_t>{0x81, 126, 0, 126}));
  EXPECT_EQ(frame_header(Opcode::kBinary, 70000),
            (std::vector<uint8_t>{0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70}));
  const auto close = encode_close(kCloseNormal, "bye");
  EXPECT_EQ(close, (std::vector<uint8_t>{0x88, 5, 0x03, 0xE8, 'b', 'y', 'e'}));
  EXPECT_LE(encode_close(kClosePolicy, std::string(500, 'x')).size(), 127u);
}

TEST(WebSocket, DecodesMaskedFramesWholeAndSplit) {
  const std::vector<uint8_t> kf{0x54, 0x4C, 0x53, 0x46, 2, 7, 0, 0, 0, 0, 0, 0};
  const auto f = client_frame(0x82, kf);
  FrameDecoder d;
  auto r = d.feed(f.data(), f.size());
  ASSERT_EQ(r.status, Status::kFrame) << r.error;
  EXPECT_EQ(r.consumed, f.size());
  EXPECT_EQ(d.frame().op, Opcode::kBinary);
  EXPECT_EQ(d.frame().payload, kf);
  // The same frame a byte at a time, then a ping in the same input as a pong.
  for (size_t i = 0; i + 1 < f.size(); ++i) {
    r = d.feed(&f[i], 1);
    ASSERT_EQ(r.status, Status::kNeedMore) << i;
    ASSERT_EQ(r.consumed, 1u);
  }
  r = d.feed(&f.back(), 1);
  ASSERT_EQ(r.status, Status::kFrame);
  EXPECT_EQ(d.frame().payload, kf);
  auto two = client_frame(0x89, {1, 2});
  const auto pong = client_frame(0x8A, {});
  two.insert(two.end(), pong.begin(), pong.end());
  r = d.feed(two.data(), two.size());
  ASSERT_EQ(r.status, Status::kFrame);
  EXPECT_EQ(d.frame().op, Opcode::kPing);
  EXPECT_EQ(d.frame().payload, (std::vector<uint8_t>{1, 2}));
  r = d.feed(two.data() + r.consumed, two.size() - r.consumed);
  ASSERT_EQ(r.status, Status::kFrame);
  EXPECT_EQ(d.frame().op, Opcode::kPong);
}

TEST(WebSocket, RefusesUnmaskedOversizedFragmentedAndTextFrames) {
  struct Case {
    std::vector<uint8_t> bytes;
    uint16_t code;
  };
  const std::vector<Case> cases = {
      {client_frame(0x82, {1, 2, 3}, /*masked=*/false), kCloseProtocol},
      {client_frame(0x82, std::vector<uint8_t>(126, 0)), kCloseTooBig},
      {client_frame(0x02, {1}), kCloseProtocol},  // FIN clear
      {client_frame(0x80, {1}), kCloseProtocol},  // continuation
      {client_frame(0x81, {'h', 'i'}), kCloseUnsupported},
      {client_frame(0xC2, {1}), kCloseProtocol},  // RSV1
      {client_frame(0x83, {1}), kCloseProtocol},  // reserved opcode
      {client_frame(0x88, {3}), kCloseProtocol},  // close with 1 byte
      {{0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4}, kCloseTooBig},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    FrameDecoder d;
    const auto r = d.feed(cases[i].bytes.data(), cases[i].bytes.size());
    ASSERT_EQ(r.status, Status::kError) << "case " << i;
    EXPECT_EQ(r.close_code, cases[i].code) << "case " << i << ": " << r.error;
    EXPECT_EQ(d.feed(cases[i].bytes.data(), 1).status, Status::kError);  // stays refused
  }
}

}  // namespace
}  // namespace tlsframe::ws
