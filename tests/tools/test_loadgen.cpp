// tlsframe-loadgen against a server that accepts each connection and closes it at once
// (finding 14): the failures are counted and the process exits normally, instead of dying
// of SIGPIPE when it writes its ClientHello into a closed connection.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

// Listens on a free loopback port; accepts and closes every connection until destroyed.
class ClosingServer {
 public:
  ClosingServer() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || listen(fd_, 256) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
      return;
    }
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;  // wakes every 100 ms to see stop_
        int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) close(c);
      }
    });
  }
  ~ClosingServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(LoadgenTest, ServerClosingDuringConnectIsCountedNotFatal) {
  ClosingServer server;
  ASSERT_NE(server.port(), 0);
  // 20 clients: before the fix, 5 runs out of 5 ended with SIGPIPE (status 141).
  RunResult r =
      run_process({TLSFRAME_LOADGEN_PATH, "-c", "20", "-t", "1", "--first-frame",
                   "--first-frame-timeout", "10", "127.0.0.1:" + std::to_string(server.port())},
                  60s);
  EXPECT_EQ(r.status, 1) << r.transcript;  // every client failed: status 1, not 128 + SIGPIPE
  EXPECT_NE(r.transcript.find("20 failed"), std::string::npos) << r.transcript;
}

}  // namespace
}  // namespace tlsframe::test
