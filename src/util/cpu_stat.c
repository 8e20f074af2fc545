/* Steal time from /proc/stat (see cpu_stat.h). */
#include "util/cpu_stat.h"

#include <fcntl.h>
#include <unistd.h>

/* The fields of the aggregate line that are summed: user nice system idle iowait irq softirq
 * steal. guest and guest_nice, which may follow, are already counted in user and nice. */
#define CPU_STAT_FIELDS 8
#define CPU_STAT_STEAL 7

int ts_cpu_times_parse(const char *text, size_t len, ts_cpu_times *out, ts_err *err) {
    static const char *const names[CPU_STAT_FIELDS] = {"user", "nice", "system", "idle",
                                                       "iowait", "irq", "softirq", "steal"};
    size_t i = 0;
    if (len < 4 || text[0] != 'c' || text[1] != 'p' || text[2] != 'u' || (text[3] != ' ' && text[3] != '\t'))
        return ts_fail(err, "/proc/stat: does not start with the aggregate \"cpu\" line");
    i = 3;
    uint64_t sum = 0, steal = 0;
    for (int f = 0; f < CPU_STAT_FIELDS; f++) {
        while (i < len && (text[i] == ' ' || text[i] == '\t')) i++;
        if (i >= len || text[i] < '0' || text[i] > '9')
            return ts_fail(err, "/proc/stat: the cpu line has no number for %s (field %d)", names[f], f + 1);
        uint64_t v = 0;
        for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
            const unsigned d = (unsigned)(text[i] - '0');
            if (v > (UINT64_MAX - d) / 10) return ts_fail(err, "/proc/stat: the %s counter is out of range", names[f]);
            v = v * 10 + d;
        }
        if (i < len && text[i] != ' ' && text[i] != '\t' && text[i] != '\n')
            return ts_fail(err, "/proc/stat: the %s counter is followed by byte 0x%02x", names[f],
                           (unsigned)(unsigned char)text[i]);
        if (v > UINT64_MAX - sum) return ts_fail(err, "/proc/stat: the cpu line's counters add up beyond range");
        sum += v;
        if (f == CPU_STAT_STEAL) steal = v;
    }
    out->total = sum;
    out->steal = steal;
    return 0;
}

bool ts_cpu_times_now(ts_cpu_times *out) {
    /* The aggregate line comes first: 10 counters of up to 20 digits fit well within this. */
    char buf[512];
    const int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t got = 0;
    while (got < sizeof buf) {
        const ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    ts_err err = {{0}};
    return ts_cpu_times_parse(buf, got, out, &err) == 0;
}

double ts_cpu_steal_fraction(const ts_cpu_times *before, const ts_cpu_times *after) {
    if (after->total <= before->total || after->steal < before->steal) return -1.0;
    const double f = (double)(after->steal - before->steal) / (double)(after->total - before->total);
    return f > 1.0 ? 1.0 : f;
}
