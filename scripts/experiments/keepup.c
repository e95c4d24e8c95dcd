// keepup: does a receiver that keeps up with its sender slow the sender down?
// A model of a ring between two processes, with nothing of shm-channel's code in it, to
// study the effect measured in docs/benchmarks.md ("a reader that keeps up too well").
//
// Build and run (pinned to CPUs 0 and 1):
//   gcc -O2 -o keepup scripts/experiments/keepup.c
//   ./keepup MODE SENDER_WORK RECEIVER_WORK [POLL_PAUSES] [LOOK_AHEAD] [ORDER]
//
// MODE          0: the receiver polls the commit word inside the next slot (shm-channel's
//               protocol); 1: it polls the sender's index, on a page of its own.
// SENDER_WORK   private stores the sender makes per message (its encode, its allocator).
// RECEIVER_WORK additions to a volatile the receiver makes per message, frames waiting or not.
// POLL_PAUSES   pause instructions between two polls of an empty ring (default 1).
// LOOK_AHEAD    when the ring is found empty, first wait (bounded: 2000 polls) for this
//               many more frames (default 0: none); mode 0 polls the later frame's commit
//               word, mode 1 the sender's index.
// ORDER         slot i is slot (i * ORDER) mod slots: 1 sequential (the default), an odd
//               constant such as 2654435761 a fixed scatter (no sequential stream for the
//               hardware prefetchers to follow).
//
// Slots of 64 bytes, 40-byte payloads, a 1 MiB ring, 20 M messages; prints messages a
// second. Runs of one configuration vary by regime: run each several times.
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { SLOT = 64, PAYLOAD = 40, RING = 1 << 20 };
static const long MESSAGES = 20000000;

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int arg(int argc, char **argv, int i, long fallback) {
  return argc > i ? (int)strtol(argv[i], 0, 0) : (int)fallback;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODE SENDER_WORK RECEIVER_WORK [POLL_PAUSES] [LOOK_AHEAD] [ORDER]\n", argv[0]);
    return 2;
  }
  int mode = arg(argc, argv, 1, 0), sender_work = arg(argc, argv, 2, 0);
  int receiver_work = arg(argc, argv, 3, 0), poll_pauses = arg(argc, argv, 4, 1);
  int look_ahead = arg(argc, argv, 5, 0);
  uint64_t order = argc > 6 ? strtoull(argv[6], 0, 0) : 1;
  const uint64_t slots = RING / SLOT;
  char *map = mmap(0, 8192 + RING, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return 1;
  _Atomic uint64_t *released = (_Atomic uint64_t *)map;      // the receiver's index
  _Atomic uint64_t *sent = (_Atomic uint64_t *)(map + 4096); // the sender's index (mode 1)
  char *data = map + 8192;
#define SLOT_OF(i) (data + (((i) * order) % slots) * SLOT)
#define COMMIT_OF(i) ((((i) / slots + 1) << 32) | PAYLOAD)

  pid_t pid = fork();
  if (pid == 0) { // the receiver
    pin(1);
    char copy[PAYLOAD];
    volatile uint64_t sink = 0;
    uint64_t sent_seen = 0;
    for (uint64_t i = 0; i < (uint64_t)MESSAGES; i++) {
      _Atomic uint64_t *commit = (_Atomic uint64_t *)SLOT_OF(i);
      if (mode == 0) {
        if (look_ahead > 0 && atomic_load_explicit(commit, memory_order_acquire) != COMMIT_OF(i)) {
          _Atomic uint64_t *later = (_Atomic uint64_t *)SLOT_OF(i + look_ahead);
          for (int k = 0; k < 2000 && atomic_load_explicit(later, memory_order_acquire) != COMMIT_OF(i + look_ahead); k++)
            for (int p = 0; p < poll_pauses; p++) __builtin_ia32_pause();
        }
        while (atomic_load_explicit(commit, memory_order_acquire) != COMMIT_OF(i))
          for (int p = 0; p < poll_pauses; p++) __builtin_ia32_pause();
      } else if (sent_seen <= i) {
        // Caught up: wait (bounded) until `look_ahead` frames more than the next are sent.
        uint64_t want = i + 1 + (uint64_t)look_ahead;
        for (int k = 0; sent_seen < want && (sent_seen <= i || k < 2000); k++) {
          sent_seen = atomic_load_explicit(sent, memory_order_acquire);
          if (sent_seen < want)
            for (int p = 0; p < poll_pauses; p++) __builtin_ia32_pause();
        }
      }
      memcpy(copy, (char *)commit + 8, PAYLOAD);
      sink += (uint64_t)copy[0];
      for (int k = 0; k < receiver_work; k++) sink += (uint64_t)k;
      atomic_store_explicit(released, i + 1, memory_order_release);
    }
    _exit(0);
  }

  pin(0); // the sender
  static uint64_t private_words[8192];
  char payload[PAYLOAD];
  memset(payload, 7, sizeof payload);
  uint64_t released_seen = 0, start = now_ns();
  for (uint64_t i = 0; i < (uint64_t)MESSAGES; i++) {
    for (int k = 0; k < sender_work; k++) ((volatile uint64_t *)private_words)[(k * 8 + i) & 8191] = i;
    while (i - released_seen >= slots) {
      released_seen = atomic_load_explicit(released, memory_order_acquire);
      if (i - released_seen >= slots) __builtin_ia32_pause();
    }
    char *slot = SLOT_OF(i);
    memcpy(slot + 8, payload, PAYLOAD);
    if (mode == 0) {
      atomic_store_explicit((_Atomic uint64_t *)slot, COMMIT_OF(i), memory_order_release);
    } else {
      *(uint64_t *)slot = COMMIT_OF(i);
      atomic_store_explicit(sent, i + 1, memory_order_release);
    }
  }
  int status;
  waitpid(pid, &status, 0);
  printf("mode %d sender_work %d receiver_work %d poll_pauses %d look_ahead %d order %llu: %.1f M msg/s\n",
         mode, sender_work, receiver_work, poll_pauses, look_ahead, (unsigned long long)order,
         MESSAGES / ((now_ns() - start) / 1e3));
  return 0;
}
