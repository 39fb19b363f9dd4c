// `tlsframe view` and `relay` with named streams (protocol version 2): view
// HOST:PORT/NAME and the tlsframe:// form against a raw v2 server
// (tests/common/raw_v2_server), `view --list` printing name, caps and
// viewers, and the clear errors from a version 1 `tlsframe serve`.
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/raw_v2_server.h"
#include "core/wire_v2.h"
#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string addr(int port) {
  return "127.0.0.1:" + std::to_string(port);
}

class ToolStreamsTest : public ToolTest {
 protected:
  void TearDown() override {
    stop_ = true;
    if (peer_.joinable()) peer_.join();
    ToolTest::TearDown();
  }
  void make_server(const std::string &certs) {
    server_ = std::make_unique<RawV2Server>(certs + "/server.pem", certs + "/server.key");
    ASSERT_TRUE(server_->ok()) << server_->error();
  }

  std::unique_ptr<RawV2Server> server_;
  std::thread peer_;
  std::atomic<bool> stop_{false};
};

TEST_F(ToolStreamsTest, ViewNamedStreamFromAVersionTwoServer) {
  const std::vector<uint8_t> jpeg = make_jpeg(64, 48);
  ASSERT_FALSE(jpeg.empty());
  std::string certs = make_certs();
  make_server(certs);
  std::vector<std::string> asked;
  // The viewer connects twice: once to read the caps, once to show the stream.
  peer_ = std::thread([&] {
    for (int connection = 0; connection < 2 && !stop_; ++connection) {
      std::string name;
      if (!server_->accept(Clock::now() + 20s) ||
          !server_->handshake_v2(&name, Clock::now() + 10s)) {
        return;
      }
      asked.push_back(name);
      server_->send(v2_caps("image/jpeg,width=64,height=48,framerate=10/1"));
      // Paced by the viewer's reading; ends when it closes (bounded in count).
      for (uint64_t i = 0; i < 500 && !stop_; ++i) {
        if (!server_->send(v2_buffer(i, true, jpeg))) break;
      }
      server_->close_client();
    }
  });
  const int port = server_->port();
  RunResult view = run_process(
      cmd({"view", addr(port) + "/cam1", "--certs", certs, "--display", "none", "--frames", "3"}),
      30s, quiet_env());
  EXPECT_EQ(view.status, 0) << view.transcript;
  EXPECT_TRUE(has_line(view.out, "protocol 2, stream cam1, server raw-v2-test")) << view.transcript;
  EXPECT_TRUE(has_line(view.out, "end of stream after 3 frames")) << view.transcript;
  stop_ = true;
  peer_.join();
  ASSERT_FALSE(asked.empty());
  for (const auto &n : asked) EXPECT_EQ(n, "cam1");
}

TEST_F(ToolStreamsTest, ListPrintsNameCapsAndViewers) {
  std::string certs = make_certs();
  make_server(certs);
  peer_ = std::thread([&] {
    if (!server_->accept(Clock::now() + 20s)) return;
    RawV2Server::Message m;
    if (server_->read_message(m, Clock::now() + 10s) != RawV2Server::ReadStatus::kMessage ||
        m.type != wire::MessageType::kListStreams) {
      ADD_FAILURE() << "expected LIST_STREAMS: " << server_->error();
      return;
    }
    server_->send(wire::encode_stream_list(
        {{"cam1", "video/x-h264 1280x720 30/1", 2}, {"door", "image/jpeg 640x480 15/1", 0}}));
    server_->wait_client_closed(Clock::now() + 10s);
  });
  RunResult list =
      run_process(cmd({"view", "--list", "tlsframe://" + addr(server_->port()), "--certs", certs}),
                  30s, quiet_env());
  EXPECT_EQ(list.status, 0) << list.transcript;
  bool cam1 = false, door = false;
  for (const auto &l : list.out) {
    cam1 |= l.find("cam1") != std::string::npos &&
            l.find("video/x-h264 1280x720 30/1") != std::string::npos &&
            l.find(" 2") != std::string::npos;
    door |= l.find("door") != std::string::npos &&
            l.find("image/jpeg 640x480 15/1") != std::string::npos;
  }
  EXPECT_TRUE(cam1) << list.transcript;
  EXPECT_TRUE(door) << list.transcript;
}

// tlsframe serve speaks version 2 and has one stream, the default: a named stream is
// "no such stream" naming the default one, and --list shows it.
TEST_F(ToolStreamsTest, ServeHasOnlyTheDefaultStreamAndListsIt) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port = start_server(&server, {"serve", "--certs", certs, "--source", "test", "--port", "0"});
  ASSERT_NE(port, 0);
  RunResult named = run_process(
      cmd({"view", addr(port) + "/cam1", "--certs", certs, "--display", "none", "--frames", "1"}),
      30s, quiet_env());
  EXPECT_EQ(named.status, 1) << named.transcript;
  EXPECT_NE(named.transcript.find("no stream named \"cam1\"; streams: \"\" (default)"),
            std::string::npos)
      << named.transcript;
  EXPECT_NE(named.transcript.find("--list"), std::string::npos) << named.transcript;
  RunResult list =
      run_process(cmd({"view", "--list", addr(port), "--certs", certs}), 30s, quiet_env());
  EXPECT_EQ(list.status, 0) << list.transcript;
  bool default_stream = false;
  for (const auto &l : list.out) default_stream |= l.rfind("(default)", 0) == 0;
  EXPECT_TRUE(default_stream) << list.transcript;
}

TEST_F(ToolStreamsTest, StreamNameReachesTheSrcAsAProperty) {
  std::string certs = make_certs();
  RunResult relay = run_process(
      cmd({"relay", "--from", "tlsframe://[::1]:7000/cam-2", "--certs", certs, "--print-pipeline"}),
      30s, quiet_env());
  EXPECT_EQ(relay.status, 0) << relay.transcript;
  EXPECT_NE(relay.transcript.find("stream-name=cam-2"), std::string::npos) << relay.transcript;
  EXPECT_NE(relay.transcript.find("host=::1"), std::string::npos) << relay.transcript;
  RunResult bad =
      run_process(cmd({"view", "127.0.0.1/.hidden", "--print-pipeline"}), 30s, quiet_env());
  EXPECT_EQ(bad.status, 2) << bad.transcript;
  EXPECT_NE(bad.transcript.find("stream name"), std::string::npos) << bad.transcript;
}

}  // namespace
}  // namespace tlsframe::test
