#ifndef QUANTIZE_GUARDED_READ_H
#define QUANTIZE_GUARDED_READ_H
#include <stddef.h>

// MARK: Reading mapped input without dying of SIGBUS (guarded_read.c)
//
// A file mapped with mmap raises SIGBUS when a page past its current end is touched: another
// program truncated it while it was being read. `qk_guarded_copy` copies `count` bytes from a
// mapping into memory the caller owns under a SIGBUS guard: the copy runs entirely in C, a SIGBUS
// on this thread during it jumps back (siglongjmp) into this function, never across a Swift
// frame, and it returns the number of bytes copied before the 64 KiB piece in which the fault
// happened (a multiple of 65536), or `count` when the whole range was read.
//
// The handler is installed once per process (first call), chained: a SIGBUS on a thread that is
// not inside a guarded copy, or one not raised by a read of mapped memory, is given to the handler
// installed before (the Swift runtime's backtracer or the default action, which ends the process).
// Safe to call concurrently from any number of threads (the guard is per thread).
size_t qk_guarded_copy(void *destination, const void *source, size_t count);

// Outside a guarded copy, a SIGBUS from reading a mapping would kill the process with a bare
// "Bus error" and leave a staging folder behind. After `qk_sigbus_notify(signal_number)`, such a
// SIGBUS instead records the faulting address (`qk_sigbus_fault_address`), sends
// `signal_number` to the process — whose handler, on an ordinary thread, removes the staging
// folders, names the file and exits — and parks the faulting thread for good (it never returns
// into the read that faulted). A fault that is not a read of a mapping (si_code BUS_ADRALN …)
// still goes to the previous handler.
void qk_sigbus_notify(int signal_number);

// The address of the last SIGBUS handed on by `qk_sigbus_notify`'s rule, NULL when none.
const void *qk_sigbus_fault_address(void);

#endif
