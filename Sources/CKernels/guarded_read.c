// A SIGBUS guard around copies out of mapped files (include/guarded_read.h).
#define _GNU_SOURCE
#include "guarded_read.h"
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static struct sigaction previous_action;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

// Per thread: whether a guarded copy runs, where to jump back to, and what it has copied.
static _Thread_local volatile sig_atomic_t guard_active = 0;
static _Thread_local sigjmp_buf guard_jump;
static _Thread_local volatile size_t guard_done = 0;

// qk_sigbus_notify's signal (0: none) and the faulting address it hands on.
static volatile sig_atomic_t notify_signal = 0;
static const void *volatile fault_address = NULL;

static void on_sigbus(int number, siginfo_t *info, void *context) {
    if (guard_active) {
        guard_active = 0;
        siglongjmp(guard_jump, 1);
    }
    // A read of a mapping past its file's end (BUS_ADRERR) outside a guard: hand it to an
    // ordinary thread and never return into the faulting read.
    if (notify_signal && info && info->si_code == BUS_ADRERR) {
        fault_address = info->si_addr;
        kill(getpid(), notify_signal);
        for (;;) pause();
    }
    // Not ours: hand it to whoever was there before.
    if (previous_action.sa_flags & SA_SIGINFO) {
        if (previous_action.sa_sigaction) { previous_action.sa_sigaction(number, info, context); return; }
    } else if (previous_action.sa_handler != SIG_IGN && previous_action.sa_handler != SIG_DFL && previous_action.sa_handler) {
        previous_action.sa_handler(number);
        return;
    }
    // The default action: restore it and let the faulting instruction run again.
    signal(SIGBUS, SIG_DFL);
}

static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, &previous_action);
}

void qk_sigbus_notify(int signal_number) {
    pthread_once(&install_once, install);
    notify_signal = signal_number;
}

const void *qk_sigbus_fault_address(void) { return fault_address; }

size_t qk_guarded_copy(void *destination, const void *source, size_t count) {
    pthread_once(&install_once, install);
    if (count == 0) return 0;
    const size_t step = 1 << 16;  // copied in pieces, so a fault says how far it got
    guard_done = 0;
    if (sigsetjmp(guard_jump, 1) != 0) {
        // A SIGBUS in the piece after `guard_done` bytes: nothing past it was read.
        return guard_done;
    }
    guard_active = 1;
    while (guard_done < count) {
        size_t piece = count - guard_done < step ? count - guard_done : step;
        memcpy((char *)destination + guard_done, (const char *)source + guard_done, piece);
        guard_done += piece;
    }
    guard_active = 0;
    return count;
}
