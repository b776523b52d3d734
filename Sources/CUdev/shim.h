#include <libudev.h>
#include <sys/eventfd.h>

/// A non-blocking, close-on-exec eventfd that wakes the udev monitor thread out of `poll`.
static inline int cudev_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
