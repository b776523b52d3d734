#ifndef SIGHTLINE_CYUV_H
#define SIGHTLINE_CYUV_H

// libyuv's plain C conversion and scaling calls (Debian's libyuv-dev). Only the headers that
// declare what Sightline calls: the umbrella <libyuv.h> also pulls in row.h's per-CPU macros and
// the C++-only MJPEG decoder. libyuv ships no pkg-config file, so the module map links "yuv".
// Every call takes caller-owned planes and keeps no pointer after it returns.
#include <libyuv/convert.h>           // YUY2ToI420, NV12ToI420, I400ToI420, I420Copy
#include <libyuv/convert_from.h>      // I420ToNV12 (for V4L2 M2M encoders that take NV12)
#include <libyuv/planar_functions.h>  // CopyPlane
#include <libyuv/scale.h>             // ScalePlane, I420Scale

#endif
