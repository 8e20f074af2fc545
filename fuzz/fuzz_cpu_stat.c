/* libFuzzer target for the /proc/stat reader of `tiefsee bench` (util/cpu_stat.h): arbitrary bytes
 * must give counters whose steal is part of their total, or one error line; never a read past the
 * given length (the input is not NUL-terminated). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "util/cpu_stat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ts_cpu_times t;
    ts_err err = {{0}};
    if (ts_cpu_times_parse((const char *)data, size, &t, &err) != 0)
        fuzz_check_message(err.msg);
    else if (t.steal > t.total)
        abort();
    return 0;
}
