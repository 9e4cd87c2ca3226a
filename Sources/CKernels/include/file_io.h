#ifndef QUANTIZE_FILE_IO_H
#define QUANTIZE_FILE_IO_H
#include <stdint.h>

// MARK: Write-behind for streamed outputs (file_io.c)
//
// `qk_writeback_start` asks the kernel to start writing the dirty pages of `count` bytes at
// `offset` of the file `descriptor` to the disk and returns at once; `qk_writeback_wait` starts
// and waits for that range (sync_file_range(2) with SYNC_FILE_RANGE_WAIT_BEFORE | WRITE |
// WAIT_AFTER). Neither makes the file durable (metadata and the disk's cache need fsync); they
// spread the writing over the run so that the final fsync has little left to do. Both return 0,
// or -1 with errno set; on systems without sync_file_range they do nothing and return 0.
int qk_writeback_start(int descriptor, int64_t offset, int64_t count);
int qk_writeback_wait(int descriptor, int64_t offset, int64_t count);

// Turns O_DIRECT on (`on` = 1) or off (0) for `descriptor`: writes then go from the caller's
// buffer to the disk without a copy into the page cache, and must be aligned (offset, length and
// buffer address multiples of the device's logical block; 4096 always does). Returns 0, or -1
// with errno set where the file system refuses it (tmpfs) or the system has no O_DIRECT.
int qk_set_direct_io(int descriptor, int on);

#endif
