/* fsg_clock.h — the monotonic clock in nanoseconds, shared by the crowd
 * guard (fsg_wake.h) and the core-distance probe (fsg_distance.h). */
#ifndef FSG_CLOCK_H
#define FSG_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t fsg_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif
