#include "util/fileio.h"

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

bool ts_pread_full(int fd, void *dst, size_t n, uint64_t offset) {
    char *c = dst;
    while (n > 0) {
        const ssize_t got = pread(fd, c, n, (off_t)offset);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            if (got == 0) errno = 0;
            return false;
        }
        c += got;
        n -= (size_t)got;
        offset += (uint64_t)got;
    }
    return true;
}

bool ts_pwrite_full(int fd, const void *src, size_t n, uint64_t offset) {
    const char *c = src;
    while (n > 0) {
        const ssize_t put = pwrite(fd, c, n, (off_t)offset);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) return false;
        c += put;
        n -= (size_t)put;
        offset += (uint64_t)put;
    }
    return true;
}
