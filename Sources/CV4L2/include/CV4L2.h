#ifndef SIGHTLINE_CV4L2_H
#define SIGHTLINE_CV4L2_H

#include <stddef.h>
#include <stdint.h>
#include <linux/videodev2.h>

// Swift cannot import function-like macros or call variadic C functions, so the V4L2 request
// codes become constants and libv4l2's variadic entry points get fixed-signature wrappers.

extern const unsigned long CV4L2_VIDIOC_QUERYCAP;
extern const unsigned long CV4L2_VIDIOC_ENUM_FMT;
extern const unsigned long CV4L2_VIDIOC_ENUM_FRAMESIZES;
extern const unsigned long CV4L2_VIDIOC_ENUM_FRAMEINTERVALS;
extern const unsigned long CV4L2_VIDIOC_G_FMT;
extern const unsigned long CV4L2_VIDIOC_S_FMT;
extern const unsigned long CV4L2_VIDIOC_G_PARM;
extern const unsigned long CV4L2_VIDIOC_S_PARM;
extern const unsigned long CV4L2_VIDIOC_REQBUFS;
extern const unsigned long CV4L2_VIDIOC_QUERYBUF;
extern const unsigned long CV4L2_VIDIOC_QBUF;
extern const unsigned long CV4L2_VIDIOC_DQBUF;
extern const unsigned long CV4L2_VIDIOC_STREAMON;
extern const unsigned long CV4L2_VIDIOC_STREAMOFF;
extern const unsigned long CV4L2_VIDIOC_QUERYCTRL;
extern const unsigned long CV4L2_VIDIOC_QUERY_EXT_CTRL;
extern const unsigned long CV4L2_VIDIOC_G_CTRL;
extern const unsigned long CV4L2_VIDIOC_S_CTRL;
extern const unsigned long CV4L2_VIDIOC_QUERYMENU;
extern const unsigned long CV4L2_VIDIOC_ENCODER_CMD;

// Codec controls of memory-to-memory encoders (expressions over other macros in the header).
extern const uint32_t CV4L2_CID_MPEG_VIDEO_BITRATE;
extern const uint32_t CV4L2_CID_MPEG_VIDEO_GOP_SIZE;
extern const uint32_t CV4L2_CID_MPEG_VIDEO_B_FRAMES;
extern const uint32_t CV4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME;
extern const uint32_t CV4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER;
extern const uint32_t CV4L2_CID_MPEG_VIDEO_H264_PROFILE;
extern const uint32_t CV4L2_CID_MPEG_VIDEO_H264_I_PERIOD;

/// `v4l2_open(path, flags)` without the variadic mode argument.
int cv4l2_open(const char *path, int flags);
/// `v4l2_ioctl(fd, request, arg)` with one pointer argument, as every V4L2 request takes.
int cv4l2_ioctl(int fd, unsigned long request, void *arg);
/// `v4l2_close(fd)`.
int cv4l2_close(int fd);



#include <sys/eventfd.h>
#include <sys/mman.h>

/// A non-blocking, close-on-exec eventfd used to wake a capture thread out of `poll`.
static inline int cv4l2_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
/// `v4l2_mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_SHARED, fd, offset)`.
void *cv4l2_mmap(int fd, size_t length, int64_t offset);
/// `v4l2_munmap(start, length)`.
int cv4l2_munmap(void *start, size_t length);
/// `MAP_FAILED`, which Swift cannot import (it is a cast macro).
static inline int cv4l2_map_failed(const void *address) { return address == MAP_FAILED; }
#endif
