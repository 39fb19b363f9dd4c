// Core server tests (fixture: server_fixture.h). Receiver: cancel, next() deadlines, read and
// connect timeouts, connection failures.
#include "core/server_fixture.h"

namespace tlsframe {
namespace {

// ===========================================================================
// Receiver: cancel, timeouts, connection and verification failures.

TEST_F(ServerReceiverTest, CancelWakesBlockedNextAtOnceAndClearCancelResumes) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);

  std::promise<void> entering;
  auto blocked = std::async(std::launch::async, [&] {
    Received m;
    Error e;
    entering.set_value();
    const auto t = Clock::now();
    NextStatus st = r->next(m, e, Clock::now() + 30s);
    return std::make_pair(st, Clock::now() - t);
  });
  entering.get_future().wait();
  const auto cancelled_at = Clock::now();
  r->cancel();
  if (blocked.wait_for(1s) != std::future_status::ready) {
    ADD_FAILURE() << "next() still blocked 1 s after cancel()";
    server->publish_caps(kCaps);  // wake it another way so the test ends now
  }
  auto [status, waited] = blocked.get();
  EXPECT_EQ(status, NextStatus::kCancelled);
  EXPECT_LT(Clock::now() - cancelled_at, 1s);
  EXPECT_LT(waited, 1s);

  // Still cancelled: returns at once even with a long deadline.
  Received m;
  Error e;
  const auto t = Clock::now();
  EXPECT_EQ(r->next(m, e, Clock::now() + kWait), NextStatus::kCancelled);
  EXPECT_LT(Clock::now() - t, 1s);

  r->clear_cancel();
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  EXPECT_TRUE(next_caps(*r, kCaps));
  EXPECT_TRUE(next_buffer(*r, 0));
  EXPECT_TRUE(r->connected());
}

TEST_F(ServerReceiverTest, NextReturnsTimeoutAtItsDeadlineWhenNothingArrives) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  Received m;
  Error e;
  const auto t = Clock::now();
  EXPECT_EQ(r->next(m, e, t + 100ms), NextStatus::kTimeout);
  EXPECT_GE(Clock::now() - t, 100ms);
  EXPECT_LT(Clock::now() - t, 2s);
}

TEST_F(ServerReceiverTest, ReceiverReadTimeoutFailsWhenServerIsSilent) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  ReceiverConfig rc = receiver_config(server->port());
  rc.read_timeout = 300ms;
  auto r = connect_receiver(rc);
  ASSERT_TRUE(r);
  Error e;
  ASSERT_TRUE(next_error(*r, e));
  EXPECT_EQ(e.kind, Error::Kind::kTimeout) << e.message;
}

TEST_F(ServerReceiverTest, ReceiverConnectTimeoutFailsWhenPeerNeverHandshakes) {
  TcpSocket listener;  // accepts TCP (backlog) but never speaks TLS
  ASSERT_TRUE(listener.bind_any(/*listen=*/true));
  ReceiverConfig rc = receiver_config(listener.port());
  rc.connect_timeout = 300ms;
  auto r = Receiver::start(rc);
  Error e;
  const auto t = Clock::now();
  ASSERT_TRUE(next_error(*r, e));
  EXPECT_EQ(e.kind, Error::Kind::kTimeout) << e.message;
  EXPECT_LT(Clock::now() - t, 3s);
  EXPECT_FALSE(r->connected());
}

TEST_F(ServerReceiverTest, ConnectToPortWithNothingListeningFailsWithNetworkError) {
  TcpSocket reserved;  // bound but not listening: connections are refused
  ASSERT_TRUE(reserved.bind_any(/*listen=*/false));
  auto r = Receiver::start(receiver_config(reserved.port()));
  Error e;
  ASSERT_TRUE(next_error(*r, e));
  EXPECT_EQ(e.kind, Error::Kind::kNetwork) << e.message;
  EXPECT_NE(e.message.find("cannot connect"), std::string::npos) << e.message;
}

}  // namespace
}  // namespace tlsframe
