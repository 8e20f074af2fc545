/* Whole-buffer positional file I/O: pread/pwrite may transfer less than asked (signals, large
 * counts); these loop until all n bytes moved. */
#ifndef TS_UTIL_FILEIO_H
#define TS_UTIL_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads n bytes at offset into dst. False on an error or end of file before n bytes (errno set
 * by pread on an error, 0 at end of file). */
bool ts_pread_full(int fd, void *dst, size_t n, uint64_t offset);
/* Writes n bytes of src at offset. False on an error or a write that moved nothing. */
bool ts_pwrite_full(int fd, const void *src, size_t n, uint64_t offset);

#endif
