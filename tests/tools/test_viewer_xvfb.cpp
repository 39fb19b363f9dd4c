// The OpenCV viewer window under Xvfb: a server sends the SMPTE test pattern,
// `tlsframe view --display opencv` shows it, and a screenshot of the X screen
// (ImageMagick's import) must show the pattern's colour bars, not a blank screen;
// q and Esc (sent with xdotool) close the window.
// TLSFRAME_SCREENSHOT_OUT=path keeps the window's screenshot (docs/viewer-opencv.png).
#include <signal.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

// True when the image shows several strongly coloured bars (yellow, cyan, magenta).
bool shows_colour_bars(const cv::Mat &img, std::string *why) {
  if (img.empty()) {
    *why = "unreadable screenshot";
    return false;
  }
  int yellow = 0, cyan = 0, magenta = 0;
  for (int y = 0; y < img.rows; y += 4) {
    for (int x = 0; x < img.cols; x += 4) {
      auto p = img.at<cv::Vec3b>(y, x);  // B, G, R
      yellow += p[2] > 150 && p[1] > 150 && p[0] < 80;
      cyan += p[0] > 150 && p[1] > 150 && p[2] < 80;
      magenta += p[0] > 150 && p[2] > 150 && p[1] < 80;
    }
  }
  cv::Scalar mean, stddev;
  cv::meanStdDev(img, mean, stddev);
  *why = "yellow " + std::to_string(yellow) + ", cyan " + std::to_string(cyan) + ", magenta " +
         std::to_string(magenta) + ", stddev " + std::to_string(stddev[0]);
  return yellow > 100 && cyan > 100 && magenta > 100 && stddev[0] > 20;
}

class ViewerXvfbTest : public ToolTest {};

TEST_F(ViewerXvfbTest, OpenCvWindowShowsTheTestPatternAndClosesWithQOrEsc) {
  if (access("/usr/bin/Xvfb", X_OK) != 0 || access("/usr/bin/import", X_OK) != 0) {
    GTEST_SKIP() << "needs Xvfb (xvfb) and import (imagemagick): scripts/install-deps.sh test";
  }
  // Xvfb picks a free display number and writes it to the fd we give it (its stdout here).
  Process xvfb(
      {"/usr/bin/Xvfb", "-displayfd", "1", "-screen", "0", "800x600x24", "-nolisten", "tcp"});
  auto number = xvfb.wait_line("^[0-9]+$", 20s);
  ASSERT_TRUE(number) << xvfb.transcript();
  std::string display = ":" + *number;

  std::string certs = make_certs();
  std::unique_ptr<Process> server;
  int port =
      start_server(&server, {"serve", "--certs", certs, "--source", "test:smpte", "--port", "0"});
  ASSERT_NE(port, 0);
  Process view(cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs", certs, "--display",
                    "opencv", "--status-interval", "1"}),
               {{"DISPLAY", display}, {"GST_DEBUG", ""}, {"XDG_RUNTIME_DIR", dir()}});
  ASSERT_TRUE(view.wait_line("showing the stream in an OpenCV window", 20s)) << view.transcript();
  // A second of frames first, so the overlay shows a measured rate.
  ASSERT_TRUE(view.wait_line("status: ([3-9][0-9]|[1-9][0-9][0-9]+) frames", 20s))
      << view.transcript();

  // The first frame is up; the X server may need a few more to paint. Bounded retries.
  std::string shot = dir() + "/screen.png", why;
  bool ok = false;
  for (int i = 0; i < 30 && !ok; ++i) {
    RunResult r =
        run_process({"/usr/bin/import", "-display", display, "-window", "root", shot}, 20s);
    ASSERT_EQ(r.status, 0) << r.transcript;
    ok = shows_colour_bars(cv::imread(shot), &why);
  }
  EXPECT_TRUE(ok) << why;
  const char *keep = getenv("TLSFRAME_SCREENSHOT_OUT");
  if (ok && keep && *keep) {
    // The window sits at the origin: keep just its 640x480.
    cv::Mat img = cv::imread(shot);
    cv::imwrite(keep, img(cv::Rect(0, 0, 640, 480)));
  }

  // q closes the window like the toy's; then a second viewer is closed with Esc. The keys go
  // through XTEST (xdotool) to the window under the pointer. Without xdotool: Ctrl-C.
  bool have_xdotool = access("/usr/bin/xdotool", X_OK) == 0;
  if (have_xdotool) {
    RunResult key = run_process({"/usr/bin/xdotool", "key", "q"}, 10s, {{"DISPLAY", display}});
    ASSERT_EQ(key.status, 0) << key.transcript;
    EXPECT_TRUE(view.wait_line("window closed with q", 10s)) << view.transcript();
  } else {
    view.signal(SIGINT);
  }
  auto status = view.wait_exit(15s);
  ASSERT_TRUE(status) << view.transcript();
  EXPECT_EQ(*status, 0) << view.transcript();

  if (have_xdotool) {
    Process again(
        cmd({"view", "127.0.0.1:" + std::to_string(port), "--certs", certs, "--display", "opencv"}),
        {{"DISPLAY", display}, {"GST_DEBUG", ""}, {"XDG_RUNTIME_DIR", dir()}});
    ASSERT_TRUE(again.wait_line("showing the stream in an OpenCV window", 20s))
        << again.transcript();
    RunResult key = run_process({"/usr/bin/xdotool", "key", "Escape"}, 10s, {{"DISPLAY", display}});
    ASSERT_EQ(key.status, 0) << key.transcript;
    EXPECT_TRUE(again.wait_line("window closed with Esc", 10s)) << again.transcript();
    auto again_status = again.wait_exit(15s);
    ASSERT_TRUE(again_status) << again.transcript();
    EXPECT_EQ(*again_status, 0) << again.transcript();
  }
  xvfb.signal(SIGTERM);
  xvfb.wait_exit(10s);
}

}  // namespace
}  // namespace tlsframe::test
