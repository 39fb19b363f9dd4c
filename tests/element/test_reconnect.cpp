// tlsframesrc reconnect: with reconnect=true a lost server is reported on
// the bus and retried with backoff; the stream resumes with DISCONT. With
// reconnect=false a lost server is an element error.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/pki.h"
#include "element/gst_util.h"

using namespace std::chrono_literals;
using tlsframe::test::Pipeline;

namespace {

class ReconnectTest : public ::testing::Test {
 protected:
  void SetUp() override { tlsframe::test::init_gstreamer(); }

  std::unique_ptr<Pipeline> start_server(int port) {
    auto p = std::make_unique<Pipeline>(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=30/1 "
        "! "
        "jpegenc ! tlsframesink name=sink host=127.0.0.1 port=" +
        std::to_string(port) + " cert-file=" + pki_.server_cert() +
        " key-file=" + pki_.server_key());
    EXPECT_NE(p->set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    return p;
  }

  std::unique_ptr<Pipeline> start_client(int port, bool reconnect) {
    auto p = std::make_unique<Pipeline>(
        "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) +
        " ca-file=" + pki_.ca() + (reconnect ? " reconnect=true max-reconnect-interval=200" : "") +
        " ! appsink name=out sync=false");
    EXPECT_NE(gst_element_set_state(p->get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    return p;
  }

  // Waits for an element message with this structure name; returns its structure copy.
  static GstStructure *wait_element_message(Pipeline &p, const char *name,
                                            std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      GstMessage *m = p.wait_message(GST_MESSAGE_ELEMENT, left);
      if (!m) return nullptr;
      const GstStructure *s = gst_message_get_structure(m);
      GstStructure *copy = s && gst_structure_has_name(s, name) ? gst_structure_copy(s) : nullptr;
      gst_message_unref(m);
      if (copy) return copy;
    }
    return nullptr;
  }

  tlsframe::test::Pki pki_;
};

TEST_F(ReconnectTest, ServerRestartIsReportedAndStreamResumesWithDiscont) {
  auto server = start_server(0);
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  auto client = start_client(port, true);
  GstStructure *connected = wait_element_message(*client, "tlsframesrc-connected", 10s);
  ASSERT_NE(connected, nullptr);
  gst_structure_free(connected);
  auto before = tlsframe::test::pull_samples(client->element("out"), 5, 10s);
  ASSERT_EQ(before.size(), 5u);
  tlsframe::test::unref_samples(before);

  server.reset();  // the server goes away (NULL): the client's connection drops
  GstStructure *lost = wait_element_message(*client, "tlsframesrc-disconnected", 10s);
  ASSERT_NE(lost, nullptr) << "no tlsframesrc-disconnected message";
  EXPECT_NE(gst_structure_get_string(lost, "reason"), nullptr);
  gst_structure_free(lost);

  server = start_server(port);  // same port again
  GstStructure *again = wait_element_message(*client, "tlsframesrc-connected", 10s);
  ASSERT_NE(again, nullptr) << "client did not reconnect";
  guint64 reconnects = 0;
  gst_structure_get_uint64(again, "reconnects", &reconnects);
  EXPECT_GE(reconnects, 1u);
  gst_structure_free(again);

  // Drain what was queued before the drop, then the first buffer of the new
  // connection carries DISCONT.
  bool saw_discont = false;
  for (int i = 0; i < 60 && !saw_discont; ++i) {
    auto s = tlsframe::test::pull_samples(client->element("out"), 1, 5s);
    ASSERT_EQ(s.size(), 1u) << "stream did not resume";
    saw_discont = GST_BUFFER_FLAG_IS_SET(gst_sample_get_buffer(s[0]), GST_BUFFER_FLAG_DISCONT);
    tlsframe::test::unref_samples(s);
  }
  EXPECT_TRUE(saw_discont);
  EXPECT_TRUE(client->problems().empty()) << client->problems()[0];
}

TEST_F(ReconnectTest, WithoutReconnectALostServerIsAnElementError) {
  auto server = start_server(0);
  auto client = start_client(tlsframe::test::current_port(server->element("sink")), false);
  auto got = tlsframe::test::pull_samples(client->element("out"), 3, 10s);
  ASSERT_EQ(got.size(), 3u);
  tlsframe::test::unref_samples(got);
  server.reset();  // stopped without EOS: the client is told the server is shutting down
  std::string error = client->wait_error(10s);
  EXPECT_NE(error.find("shutting down"), std::string::npos) << error;
}

}  // namespace
