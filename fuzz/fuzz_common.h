/* Shared by the fuzz targets that drive path-based loaders: the input is placed in an anonymous
 * in-memory file (memfd) and handed over as /proc/self/fd/N, so the real loading code — mmap,
 * split detection, error messages — runs unchanged, without touching the disk. */
#ifndef TS_FUZZ_COMMON_H
#define TS_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data to a fresh memfd; fills path; returns the fd (caller closes) or aborts. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("fuzz-input", 0);
    if (fd < 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* A refusal must be one non-empty line. */
static inline void fuzz_check_message(const char *msg) {
    if (!msg[0] || strchr(msg, '\n')) abort();
}

#endif
