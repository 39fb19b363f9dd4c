// cvcamsrc with a video file opened through cv::VideoCapture (CI has no
// camera): native caps, negotiation to another size and rate, pacing,
// end of file, and clean errors for an absent camera or file.
#include <gst/video/video.h>
#include <sys/stat.h>

#include "element/gst_util.h"
#include "gst/cv_frame.h"
#include "tools/process.h"

namespace tlsframe::test {
namespace {

using namespace std::chrono_literals;

constexpr int kFrames = 30;

class CvCamSrcTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gchar *d = g_dir_make_tmp("tlsframe-cvcam-XXXXXX", nullptr);
    dir_ = d;
    g_free(d);
    // 30 MJPEG frames, 320x240 at 30 fps, in AVI: a format every OpenCV build reads.
    RunResult r = run_process(
        {"/usr/bin/gst-launch-1.0", "-q", "videotestsrc", "num-buffers=" + std::to_string(kFrames),
         "pattern=smpte", "!", "video/x-raw,width=320,height=240,framerate=30/1", "!", "jpegenc",
         "!", "avimux", "!", "filesink", "location=" + video()},
        30s);
    ASSERT_EQ(r.status, 0) << r.transcript;
    // 3 s for the serve test, so a viewer can join before the end of the file.
    RunResult l =
        run_process({"/usr/bin/gst-launch-1.0", "-q", "videotestsrc", "num-buffers=90", "!",
                     "video/x-raw,width=320,height=240,framerate=30/1", "!", "jpegenc", "!",
                     "avimux", "!", "filesink", "location=" + dir_ + "/long.avi"},
                    30s);
    ASSERT_EQ(l.status, 0) << l.transcript;
  }
  static void TearDownTestSuite() { run_process({"/bin/rm", "-rf", dir_}, 10s); }
  void SetUp() override { init_gstreamer(); }
  static std::string video() { return dir_ + "/clip.avi"; }

  static std::string dir_;
};
std::string CvCamSrcTest::dir_;

TEST_F(CvCamSrcTest, FileAtNativeSizeAndRateThenEos) {
  Pipeline p("cvcamsrc location=" + video() + " ! appsink name=out sync=false");
  ASSERT_TRUE(p.ok());
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  auto samples = pull_samples(p.element("out"), kFrames + 5, 20s);
  ASSERT_EQ(samples.size(), static_cast<size_t>(kFrames)) << pending_errors(p);
  GstVideoInfo info;
  ASSERT_TRUE(gst_video_info_from_caps(&info, gst_sample_get_caps(samples[0])));
  EXPECT_EQ(GST_VIDEO_INFO_FORMAT(&info), GST_VIDEO_FORMAT_BGR);
  EXPECT_EQ(info.width, 320);
  EXPECT_EQ(info.height, 240);
  EXPECT_EQ(info.fps_n, 30);
  EXPECT_EQ(info.fps_d, 1);
  GstClockTime last = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    GstBuffer *b = gst_sample_get_buffer(samples[i]);
    EXPECT_EQ(gst_buffer_get_size(b), info.size);
    ASSERT_TRUE(GST_BUFFER_PTS_IS_VALID(b));
    if (i) {
      EXPECT_GT(GST_BUFFER_PTS(b), last);
    }
    last = GST_BUFFER_PTS(b);
  }
  // Live pacing at 30 fps: 29 intervals of ~33 ms.
  GstClockTime span = last - GST_BUFFER_PTS(gst_sample_get_buffer(samples[0]));
  EXPECT_GT(span, 800 * GST_MSECOND);
  EXPECT_LT(span, 2000 * GST_MSECOND);
  unref_samples(samples);
  EXPECT_TRUE(p.wait_message(GST_MESSAGE_EOS, 5s) != nullptr);
}

TEST_F(CvCamSrcTest, NegotiatesAnotherSizeAndRate) {
  Pipeline p("cvcamsrc location=" + video() +
             " ! video/x-raw,width=160,height=120,framerate=15/1 ! appsink name=out sync=false");
  ASSERT_TRUE(p.ok());
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  auto samples = pull_samples(p.element("out"), 5, 10s);
  ASSERT_EQ(samples.size(), 5u) << pending_errors(p);
  GstVideoInfo info;
  ASSERT_TRUE(gst_video_info_from_caps(&info, gst_sample_get_caps(samples[0])));
  EXPECT_EQ(info.width, 160);
  EXPECT_EQ(info.height, 120);
  EXPECT_EQ(info.fps_n, 15);
  EXPECT_EQ(gst_buffer_get_size(gst_sample_get_buffer(samples[0])), 160u * 120u * 3u);
  GstClockTime span = GST_BUFFER_PTS(gst_sample_get_buffer(samples[4])) -
                      GST_BUFFER_PTS(gst_sample_get_buffer(samples[0]));
  EXPECT_GT(span, 200 * GST_MSECOND);  // 4 intervals of ~67 ms
  unref_samples(samples);
}

TEST_F(CvCamSrcTest, LoopRestartsTheFile) {
  Pipeline p("cvcamsrc location=" + video() + " loop=true ! appsink name=out sync=false");
  ASSERT_TRUE(p.ok());
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  auto samples = pull_samples(p.element("out"), kFrames + 10, 20s);
  EXPECT_EQ(samples.size(), static_cast<size_t>(kFrames + 10)) << pending_errors(p);
  unref_samples(samples);
}

TEST_F(CvCamSrcTest, AbsentCameraIsOneCleanError) {
  Pipeline p("cvcamsrc device-index=63 ! fakesink");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(gst_element_set_state(p.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  std::string err = p.wait_error(5s);
  EXPECT_NE(err.find("camera 63"), std::string::npos) << err;
}

TEST_F(CvCamSrcTest, MissingFileIsOneCleanError) {
  Pipeline p("cvcamsrc location=" + dir_ + "/missing.avi ! fakesink");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(gst_element_set_state(p.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  std::string err = p.wait_error(5s);
  EXPECT_NE(err.find("missing.avi"), std::string::npos) << err;
}

// Issue 14, finding 1: OpenCV's GStreamer backend runs a location holding " ! " as a
// pipeline. cvcamsrc opens regular files only, with the FFmpeg backend: that string is an
// error and writes nothing.
TEST_F(CvCamSrcTest, LocationIsNeverRunAsAPipeline) {
  std::string out = dir_ + "/injected.out";
  Pipeline p("cvcamsrc name=cv ! fakesink");
  ASSERT_TRUE(p.ok());
  g_object_set(p.element("cv"), "location",
               ("videotestsrc num-buffers=30 ! tee name=t ! queue ! videoconvert ! appsink t. ! "
                "queue ! filesink location=" +
                out)
                   .c_str(),
               nullptr);
  EXPECT_EQ(gst_element_set_state(p.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  // Not a file of that name: one clean error naming it.
  std::string err = p.wait_error(5s);
  EXPECT_NE(err.find("Could not open video 'videotestsrc num-buffers=30 ! tee"), std::string::npos)
      << err;
  EXPECT_NE(err.find("No such file"), std::string::npos) << err;
  gst_element_set_state(p.get(), GST_STATE_NULL);
  struct stat st;
  EXPECT_NE(stat(out.c_str(), &st), 0) << out << " was written";
}

TEST_F(CvCamSrcTest, DirectoryLocationIsOneCleanError) {
  Pipeline p("cvcamsrc location=" + dir_ + " ! fakesink");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(gst_element_set_state(p.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  std::string err = p.wait_error(5s);
  EXPECT_NE(err.find("not a regular file"), std::string::npos) << err;
}

// A Matroska H.264 file (not only the AVI/MJPEG clip) still plays through the FFmpeg backend.
TEST_F(CvCamSrcTest, MatroskaH264FilePlays) {
  std::string mkv = dir_ + "/clip.mkv";
  RunResult r = run_process({"/usr/bin/gst-launch-1.0", "-q", "videotestsrc", "num-buffers=10", "!",
                             "video/x-raw,width=160,height=120,framerate=30/1", "!", "x264enc", "!",
                             "h264parse", "!", "matroskamux", "!", "filesink", "location=" + mkv},
                            30s);
  if (r.status != 0) GTEST_SKIP() << "cannot make an H.264 file here: " << r.transcript;
  Pipeline p("cvcamsrc location=" + mkv + " ! appsink name=out sync=false");
  ASSERT_TRUE(p.ok());
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  auto samples = pull_samples(p.element("out"), 10, 20s);
  EXPECT_EQ(samples.size(), 10u) << pending_errors(p);
  unref_samples(samples);
}

// Finding 9: a 2-channel (YUY2) frame was copied as if it had 3 bytes per pixel, reading
// past the Mat. Every layout now converts to BGR of the same size, or is refused.
TEST(CvFrameToBgr, EachChannelCountBecomesBgrOfTheSameSize) {
  const int w = 6, h = 4;
  for (int type : {CV_8UC1, CV_8UC2, CV_8UC3, CV_8UC4, CV_16UC1, CV_16UC3, CV_32FC3}) {
    cv::Mat in(h, w, type, cv::Scalar::all(128));
    cv::Mat out;
    std::string why;
    ASSERT_TRUE(tlsframe::gst::to_bgr8(in, &out, &why)) << type << ": " << why;
    EXPECT_EQ(out.type(), CV_8UC3) << type;
    EXPECT_EQ(out.cols, w) << type;
    EXPECT_EQ(out.rows, h) << type;
    EXPECT_TRUE(out.isContinuous() || out.step >= static_cast<size_t>(w) * 3) << type;
  }
  // YUY2 mid-gray (Y = U = V = 128) is mid-gray BGR.
  cv::Mat yuy2(h, w, CV_8UC2, cv::Scalar(128, 128)), bgr;
  std::string why;
  ASSERT_TRUE(tlsframe::gst::to_bgr8(yuy2, &bgr, &why)) << why;
  cv::Vec3b px = bgr.at<cv::Vec3b>(1, 1);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(px[c], 128, 2) << c;
}

TEST(CvFrameToBgr, OtherLayoutsAreRefusedNotCopied) {
  cv::Mat out;
  std::string why;
  std::vector<unsigned char> five(4 * 6 * 5, 1);
  EXPECT_FALSE(tlsframe::gst::to_bgr8(cv::Mat(4, 6, CV_8UC(5), five.data()), &out, &why));
  EXPECT_TRUE(out.empty());
  EXPECT_NE(why.find("5-channel"), std::string::npos) << why;
  EXPECT_FALSE(tlsframe::gst::to_bgr8(cv::Mat(4, 5, CV_8UC2, cv::Scalar::all(1)), &out, &why));
  EXPECT_NE(why.find("odd width"), std::string::npos) << why;
  EXPECT_FALSE(tlsframe::gst::to_bgr8(cv::Mat(), &out, &why));
}

// The tool's opencv:FILE source is cvcamsrc: served and viewed end to end.
TEST_F(CvCamSrcTest, ServeOpencvFileSourceToAViewer) {
  std::string certs = dir_ + "/certs";
  std::string tool = TLSFRAME_TOOL_PATH;
  RunResult c = run_process({tool, "certs", "--out", certs}, 30s);
  ASSERT_EQ(c.status, 0) << c.transcript;
  Process server({tool, "serve", "--certs", certs, "--source", "opencv:" + dir_ + "/long.avi",
                  "--port", "0", "--width", "320", "--height", "240"});
  auto line = server.wait_line("listening on port [0-9]+", 20s);
  ASSERT_TRUE(line) << server.transcript();
  EXPECT_TRUE(server.wait_line("source: video .* through OpenCV \\(cvcamsrc\\)", 1s));
  std::string port = match_group(*line, "port ([0-9]+)");
  RunResult view = run_process(
      {tool, "view", "127.0.0.1:" + port, "--certs", certs, "--display", "none", "--frames", "10"},
      30s, {{"GST_DEBUG", ""}, {"DISPLAY", ""}});
  EXPECT_EQ(view.status, 0) << view.transcript;
  // The 3 s clip ends: the server sends end of stream and exits by itself.
  auto status = server.wait_exit(20s);
  ASSERT_TRUE(status) << server.transcript();
  EXPECT_EQ(*status, 0) << server.transcript();
}

}  // namespace
}  // namespace tlsframe::test
