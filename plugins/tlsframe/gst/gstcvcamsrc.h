// cvcamsrc: live camera (or video file) source around OpenCV's cv::VideoCapture.
// Built only when the meson feature `opencv` finds OpenCV.
#pragma once

#include <gst/base/gstpushsrc.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_CV_CAM_SRC (gst_cv_cam_src_get_type())
G_DECLARE_FINAL_TYPE(GstCvCamSrc, gst_cv_cam_src, GST, CV_CAM_SRC, GstPushSrc)

G_END_DECLS
