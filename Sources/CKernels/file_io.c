// Write-behind for streamed outputs (include/file_io.h).
#define _GNU_SOURCE
#include "file_io.h"
#include <errno.h>
#include <fcntl.h>

int qk_writeback_start(int descriptor, int64_t offset, int64_t count) {
#if defined(__linux__)
    return sync_file_range(descriptor, (off_t)offset, (off_t)count, SYNC_FILE_RANGE_WRITE);
#else
    (void)descriptor; (void)offset; (void)count;
    return 0;
#endif
}

int qk_writeback_wait(int descriptor, int64_t offset, int64_t count) {
#if defined(__linux__)
    return sync_file_range(descriptor, (off_t)offset, (off_t)count,
                           SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
#else
    (void)descriptor; (void)offset; (void)count;
    return 0;
#endif
}

int qk_set_direct_io(int descriptor, int on) {
#if defined(O_DIRECT)
    int flags = fcntl(descriptor, F_GETFL);
    if (flags < 0) return -1;
    flags = on ? (flags | O_DIRECT) : (flags & ~O_DIRECT);
    return fcntl(descriptor, F_SETFL, flags);
#else
    (void)descriptor; (void)on;
    errno = EINVAL;
    return -1;
#endif
}
