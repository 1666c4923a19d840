/*
 * SIGINT/SIGTERM as a request to stop (see stop.h).
 *
 * The handler only sets a flag. libtern's background thread may be the one
 * the signal interrupts; libuv retries its interrupted system calls, and
 * the flag is read by the main thread's polling loop either way.
 */
#include "stop.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

void cli_stop_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

bool cli_stop_requested(void) {
  return stop_flag != 0;
}

void cli_sleep_ms(uint64_t ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (!stop_flag && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}
