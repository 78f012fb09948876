/*
 * LD_PRELOAD shim of `cargo xtask bench --only verifier` (see bench_bpf.rs):
 * asks the kernel for its verifier statistics on every BPF_PROG_LOAD the
 * loader makes without a log of its own, and appends them to the file named
 * by OBSERVER_BENCH_VERIFIER_LOG:
 *
 *   prog NAME ret FD syscall_us N
 *   verification time N usec
 *   stack depth ...
 *   processed N insns (limit 1000000) max_states_per_insn N total_states N peak_states N mark_read N
 *
 * aya issues its bpf(2) calls through glibc's syscall(3), which this shim
 * wraps; everything else passes through untouched. The load is the same one
 * the loader asked for (BPF_LOG_STATS only adds the summary lines), and the
 * attributes are restored before returning.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BPF_LOG_STATS_LEVEL 4

static char log_buf[1 << 16];
static char line[512];

long syscall(long number, ...) {
  static long (*real)(long, ...);
  if (!real) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
  va_end(ap);
  const char *path = getenv("OBSERVER_BENCH_VERIFIER_LOG");
  union bpf_attr *attr = (union bpf_attr *)a[1];
  if (number != SYS_bpf || a[0] != BPF_PROG_LOAD || !path || attr->log_level != 0)
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);

  log_buf[0] = 0;
  attr->log_level = BPF_LOG_STATS_LEVEL;
  attr->log_buf = (unsigned long)log_buf;
  attr->log_size = sizeof log_buf;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long ret = real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
  int saved_errno = errno;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  attr->log_level = 0;
  attr->log_buf = 0;
  attr->log_size = 0;

  long us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    int n = snprintf(line, sizeof line, "prog %.16s ret %ld syscall_us %ld\n", attr->prog_name,
                     ret, us);
    if (n > 0 && write(fd, line, (size_t)n) < 0) {
    }
    size_t len = strnlen(log_buf, sizeof log_buf);
    if (write(fd, log_buf, len) < 0) {
    }
    close(fd);
  }
  errno = saved_errno;
  return ret;
}
