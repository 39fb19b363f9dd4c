// tlsframe serve, view and relay end to end on loopback, with certificates
// made by `tlsframe certs` (so every test is also a real handshake with them).
#include <signal.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <utility>

#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

std::string first_bytes(const std::string &path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string s(n, '\0');
  in.read(&s[0], static_cast<std::streamsize>(n));
  s.resize(static_cast<size_t>(in.gcount()));
  return s;
}

class StreamTest : public ToolTest {
 protected:
  std::string addr(int port) { return "127.0.0.1:" + std::to_string(port); }
};

TEST_F(StreamTest, ServeJpegViewReceivesFramesAndServerReportsTheClient) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port = start_server(&server, {"serve", "--certs", certs, "--source", "auto", "--port", "0",
                                    "--status-interval", "1"});
  ASSERT_NE(port, 0);
  // auto says what it chose and why; every address and the fingerprint are printed.
  EXPECT_TRUE(server->wait_line("source: .*", 1s)) << server->transcript();
  EXPECT_TRUE(server->wait_line("Listening at 127\\.0\\.0\\.1:" + std::to_string(port), 5s));
  EXPECT_TRUE(
      server->wait_line("certificate SHA-256 fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}", 5s));

  RunResult view = run_process(cmd({"view", addr(port), "--certs", certs, "--display", "none",
                                    "--frames", "20", "--status-interval", "1"}),
                               30s, quiet_env());
  ASSERT_EQ(view.status, 0) << view.transcript;
  bool eos = false, connected = false;
  for (const auto &l : view.out) {
    eos |= l.find("end of stream after 20 frames") != std::string::npos;
    connected |= l.find("connected to 127.0.0.1:" + std::to_string(port)) != std::string::npos;
  }
  EXPECT_TRUE(eos) << view.transcript;
  EXPECT_TRUE(connected) << view.transcript;
  EXPECT_TRUE(server->wait_line("client [0-9]+ connected from 127\\.0\\.0\\.1", 5s))
      << server->transcript();
  EXPECT_TRUE(server->wait_line("left: closed", 5s)) << server->transcript();
  EXPECT_TRUE(
      server->wait_line("status: [0-9]+ clients?, [0-9.]+ fps, [0-9.]+ Mbit/s, [0-9]+ "
                        "dropped",
                        5s))
      << server->transcript();
}

TEST_F(StreamTest, RecordH264MkvAndMp4HaveTheRightDurationAndSnapshotIsAJpeg) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port =
      start_server(&server, {"serve", "--certs", certs, "--source", "test", "--codec", "h264",
                             "--gop", "10", "--port", "0", "--width", "320", "--height", "240"});
  ASSERT_NE(port, 0);
  // 60 frames at 30 fps: 2 s of video, remuxed without re-encoding.
  // The timestamps are the receive times (tlsframesrc is live), so on a loaded machine the
  // file may be a little longer than 2 s, but never longer than the viewer ran.
  std::string mkv = dir() + "/rec.mkv", mp4 = dir() + "/rec.mp4", jpg = dir() + "/snap.jpg";
  auto t0 = std::chrono::steady_clock::now();
  RunResult a = run_process(cmd({"view", addr(port), "--certs", certs, "--display", "none",
                                 "--frames", "60", "--record", mkv, "--snapshot", jpg}),
                            40s, quiet_env());
  double wall_a = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(a.status, 0) << a.transcript;
  t0 = std::chrono::steady_clock::now();
  RunResult b =
      run_process(cmd({"view", addr(port), "--certs", certs, "--frames", "60", "--record", mp4}),
                  40s, quiet_env());
  double wall_b = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(b.status, 0) << b.transcript;
  for (const auto &[file, wall] : {std::pair{mkv, wall_a}, std::pair{mp4, wall_b}}) {
    std::string out;
    double d = discovered_duration(file, &out);
    EXPECT_GE(d, 1.9) << file << "\n" << out;
    EXPECT_LE(d, wall) << file << "\n" << out;
    EXPECT_NE(out.find("H.264"), std::string::npos) << out;
    printf("recording %s: %.3f s (viewer ran %.2f s)\n", file.c_str(), d, wall);
  }
  EXPECT_EQ(first_bytes(jpg, 3), std::string("\xFF\xD8\xFF"));
}

TEST_F(StreamTest, MutualTlsViewerWithClientCertificate) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port = start_server(&server,
                          {"serve", "--certs", certs, "--source", "test", "--port", "0", "--mtls"});
  ASSERT_NE(port, 0);
  RunResult view = run_process(cmd({"view", addr(port), "--certs", certs, "--client", "alice",
                                    "--display", "none", "--frames", "10"}),
                               30s, quiet_env());
  EXPECT_EQ(view.status, 0) << view.transcript;
  EXPECT_TRUE(server->wait_line("client [0-9]+ connected from .*CN ?= ?alice", 5s))
      << server->transcript();
}

TEST_F(StreamTest, Ipv6BracketedAddress) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server = std::make_unique<Process>(
      cmd({"serve", "--certs", certs, "--source", "test", "--port", "0", "--bind", "::"}));
  auto line = server->wait_line("listening on port [0-9]+|error", 20s);
  ASSERT_TRUE(line) << server->transcript();
  if (line->find("error") != std::string::npos) GTEST_SKIP() << "no IPv6 here: " << *line;
  int port = std::atoi(match_group(*line, "port ([0-9]+)").c_str());
  RunResult view = run_process(cmd({"view", "[::1]:" + std::to_string(port), "--certs", certs,
                                    "--display", "none", "--frames", "10"}),
                               30s, quiet_env());
  EXPECT_EQ(view.status, 0) << view.transcript;
}

TEST_F(StreamTest, CtrlCSendsEndOfStreamToViewersAndExitsCleanly) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port = start_server(&server, {"serve", "--certs", certs, "--source", "test", "--port", "0"});
  ASSERT_NE(port, 0);
  Process view(
      cmd({"view", addr(port), "--certs", certs, "--display", "none", "--status-interval", "1"}),
      quiet_env());
  ASSERT_TRUE(view.wait_line("status: [1-9][0-9]* frames", 15s)) << view.transcript();
  server->signal(SIGINT);
  auto server_status = server->wait_exit(15s);
  ASSERT_TRUE(server_status) << server->transcript();
  EXPECT_EQ(*server_status, 0) << server->transcript();
  EXPECT_TRUE(server->wait_line("end of stream sent to every viewer", 1s)) << server->transcript();
  auto view_status = view.wait_exit(15s);
  ASSERT_TRUE(view_status) << view.transcript();
  EXPECT_EQ(*view_status, 0) << view.transcript();
  EXPECT_TRUE(view.wait_line("end of stream after [0-9]+ frames", 1s)) << view.transcript();
}

TEST_F(StreamTest, TwoLevelRelayChainOnLoopback) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server, relay1, relay2;
  int port0 = start_server(&server, {"serve", "--certs", certs, "--source", "test", "--codec",
                                     "h264", "--gop", "10", "--port", "0"});
  ASSERT_NE(port0, 0);
  int port1 =
      start_server(&relay1, {"relay", "--from", addr(port0), "--port", "0", "--certs", certs});
  ASSERT_NE(port1, 0);
  int port2 =
      start_server(&relay2, {"relay", "--from", addr(port1), "--port", "0", "--certs", certs});
  ASSERT_NE(port2, 0);
  RunResult view = run_process(
      cmd({"view", addr(port2), "--certs", certs, "--display", "none", "--frames", "30"}), 40s,
      quiet_env());
  ASSERT_EQ(view.status, 0) << view.transcript;
  EXPECT_TRUE(relay1->wait_line("upstream connected", 5s)) << relay1->transcript();
  EXPECT_TRUE(relay2->wait_line("upstream connected", 5s)) << relay2->transcript();
  // Each level has one client: the next relay (and the viewer at the end).
  EXPECT_TRUE(server->wait_line("client [0-9]+ connected from 127\\.0\\.0\\.1", 5s));
  EXPECT_TRUE(relay1->wait_line("client [0-9]+ connected from 127\\.0\\.0\\.1", 5s));
  EXPECT_TRUE(relay2->wait_line("client [0-9]+ connected from 127\\.0\\.0\\.1", 5s));

  // End of stream travels down the tree: stopping the server stops both relays.
  server->signal(SIGINT);
  for (auto *p : {server.get(), relay1.get(), relay2.get()}) {
    auto status = p->wait_exit(20s);
    ASSERT_TRUE(status) << p->transcript();
    EXPECT_EQ(*status, 0) << p->transcript();
  }
}

}  // namespace
}  // namespace tlsframe::test

namespace tlsframe::test {
namespace {

TEST_F(StreamTest, JpegIntoMp4IsRefusedWithAHint) {
  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port = start_server(&server, {"serve", "--certs", certs, "--source", "test", "--port", "0"});
  ASSERT_NE(port, 0);
  RunResult r = run_process(
      cmd({"view", addr(port), "--certs", certs, "--record", dir() + "/x.mp4"}), 30s, quiet_env());
  EXPECT_EQ(r.status, 1) << r.transcript;
  ASSERT_EQ(r.err.size(), 1u) << r.transcript;
  EXPECT_NE(r.err[0].find(".mkv"), std::string::npos) << r.err[0];
}

}  // namespace
}  // namespace tlsframe::test

namespace tlsframe::test {
namespace {

// --source file:PATH decodes a video file (decodebin, video only) and serves it in real time.
TEST_F(StreamTest, ServeFileSourceToAViewerThenEndOfFile) {
  std::string certs = make_certs();
  std::string clip = dir() + "/clip.mkv";
  RunResult mk =
      run_process({"/usr/bin/gst-launch-1.0", "-q", "videotestsrc", "num-buffers=60", "!",
                   "video/x-raw,width=320,height=240,framerate=30/1", "!", "x264enc", "!",
                   "h264parse", "!", "matroskamux", "!", "filesink", "location=" + clip},
                  30s);
  ASSERT_EQ(mk.status, 0) << mk.transcript;
  std::unique_ptr<Process> server;
  int port = start_server(&server, {"serve", "--certs", certs, "--source", "file:" + clip, "--port",
                                    "0", "--width", "320", "--height", "240"});
  ASSERT_NE(port, 0);
  EXPECT_TRUE(server->wait_line("source: video file .* \\(decodebin\\)", 5s));
  RunResult view = run_process(
      cmd({"view", addr(port), "--certs", certs, "--display", "none", "--frames", "10"}), 30s,
      quiet_env());
  EXPECT_EQ(view.status, 0) << view.transcript;
  // The 2 s file ends: end of stream, and the server exits by itself.
  auto status = server->wait_exit(20s);
  ASSERT_TRUE(status) << server->transcript();
  EXPECT_EQ(*status, 0) << server->transcript();
}

}  // namespace
}  // namespace tlsframe::test
