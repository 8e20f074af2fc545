/* `tiefsee cache`: what the repacked-weights cache (--repack-cache) holds, and removing what is no
 * longer of use. Only files with a cache file's name are looked at, and only those whose first bytes
 * are a tiefsee cache header (or temporary files of a writer that died) are ever deleted: a
 * user's own file in a folder given by TIEFSEE_REPACK_CACHE_DIR stays. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/repack_cache.h"

enum entry_state {
    ENTRY_CURRENT,       /* the model file is there, unchanged since the cache was written */
    ENTRY_MODEL_CHANGED, /* prunable */
    ENTRY_MODEL_MISSING, /* prunable */
    ENTRY_UNUSABLE,      /* a tiefsee cache this version cannot use (cut short, old format): prunable */
    ENTRY_WRITING,       /* a temporary file of a live writer */
    ENTRY_ORPHAN,        /* a temporary file of a writer that died: prunable */
    ENTRY_FOREIGN,       /* named like a cache file but not one: never touched */
};

typedef struct entry {
    char path[PATH_MAX];
    char model[TS_RPC_PATH_MAX];
    char why[256];
    uint64_t bytes;
    enum entry_state state;
} entry;

static const char *state_name(enum entry_state s) {
    switch (s) {
    case ENTRY_CURRENT: return "current";
    case ENTRY_MODEL_CHANGED: return "model file changed";
    case ENTRY_MODEL_MISSING: return "model file missing";
    case ENTRY_UNUSABLE: return "unusable";
    case ENTRY_WRITING: return "being written";
    case ENTRY_ORPHAN: return "left by a writer that died";
    case ENTRY_FOREIGN: return "not a tiefsee cache file";
    }
    return "?";
}

static bool ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* NAME.tsrp.tmp.PID.XXXXXX -> PID, or 0 when the name is not a temporary cache file's. */
static long temp_pid(const char *name) {
    const char *t = strstr(name, ".tsrp.tmp.");
    if (!t) return 0;
    char *end = NULL;
    errno = 0;
    const long pid = strtol(t + strlen(".tsrp.tmp."), &end, 10);
    return errno == 0 && end && *end == '.' && pid > 0 && pid <= INT_MAX ? pid : 0;
}

/* A path read from a file (or a file's name) may hold any bytes: control characters are shown as
 * '?', so that a damaged or crafted header cannot break the listing's lines or drive the terminal. */
static void printable(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

static const char *shown(const char *s, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", s);
    printable(buf);
    return buf;
}

static void classify(const char *dir, const char *name, entry *e) {
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s/%s", dir, name);
    struct stat st;
    if (lstat(e->path, &st) != 0 || !S_ISREG(st.st_mode)) {
        e->state = ENTRY_FOREIGN;
        snprintf(e->why, sizeof e->why, "not a regular file");
        return;
    }
    e->bytes = (uint64_t)st.st_size;
    const long pid = temp_pid(name);
    if (pid) {
        e->state = kill((pid_t)pid, 0) == 0 || errno != ESRCH ? ENTRY_WRITING : ENTRY_ORPHAN;
        snprintf(e->why, sizeof e->why, "process %ld", pid);
        return;
    }
    ts_rpc_header h;
    char buf[sizeof h];
    const int fd = open(e->path, O_RDONLY | O_CLOEXEC);
    const ssize_t got = fd >= 0 ? pread(fd, buf, sizeof buf, 0) : -1;
    if (fd >= 0) close(fd);
    if (got < (ssize_t)sizeof h.magic || memcmp(buf, TS_RPC_MAGIC, sizeof h.magic) != 0) {
        e->state = ENTRY_FOREIGN;
        snprintf(e->why, sizeof e->why, "no cache header");
        return;
    }
    if (ts_rpc_parse(buf, (size_t)got, (uint64_t)st.st_size, &h, e->why, sizeof e->why) != 0) {
        e->state = ENTRY_UNUSABLE;
        return;
    }
    snprintf(e->model, sizeof e->model, "%s", h.model_path);
    printable(e->model);
    struct stat ms;
    if (stat(h.model_path, &ms) != 0) {
        e->state = ENTRY_MODEL_MISSING;
        return;
    }
    const uint64_t mtime = (uint64_t)ms.st_mtim.tv_sec * 1000000000u + (uint64_t)ms.st_mtim.tv_nsec;
    e->state = (uint64_t)ms.st_dev == h.model_dev && (uint64_t)ms.st_ino == h.model_ino &&
                       (uint64_t)ms.st_size == h.model_size && mtime == h.model_mtime_ns
                   ? ENTRY_CURRENT
                   : ENTRY_MODEL_CHANGED;
}

static int cmp_entry(const void *a, const void *b) { return strcmp(((const entry *)a)->path, ((const entry *)b)->path); }

int cmd_cache(int argc, char **argv) {
    const char *positional[1];
    arg_parser p = {"cache", NULL, 0, positional, 0, 1, false};
    if (args_parse(&p, argc, argv) != 0) return EXIT_USAGE;
    if (p.help) {
        printf("usage: tiefsee cache [list|prune|clear]\n\n"
               "The repacked-weights cache that --repack-cache writes (one file per model and kernel set) in\n"
               "$TIEFSEE_REPACK_CACHE_DIR, else $XDG_CACHE_HOME/tiefsee/repacked, else ~/.cache/tiefsee/repacked.\n\n"
               "  list   (default) each file: size, state, the model file it was made from\n"
               "  prune  delete the files whose model file is gone or changed, that this tiefsee cannot use,\n"
               "         or that a writer which died left behind\n"
               "  clear  delete every cache file (and what prune deletes)\n\n"
               "Files in the folder that are not tiefsee cache files are listed but never deleted.\n");
        return 0;
    }
    const char *action = p.n_positional ? positional[0] : "list";
    const int mode = strcmp(action, "list") == 0 ? 0 : strcmp(action, "prune") == 0 ? 1 : strcmp(action, "clear") == 0 ? 2 : -1;
    if (mode < 0) return usage_error("cache", "unknown action '%s' (list, prune or clear)", action);
    char dir[1024];
    if (!cli_repack_cache_dir(dir, sizeof dir)) {
        fprintf(stderr, "tiefsee cache: no folder for the cache (set TIEFSEE_REPACK_CACHE_DIR or HOME)\n");
        return 1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) {
            printf("%s: no cache folder (nothing cached yet)\n", dir);
            return 0;
        }
        fprintf(stderr, "tiefsee cache: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    entry *entries = NULL;
    int n = 0, cap = 0, rc = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!ends_with(de->d_name, ".tsrp") && !temp_pid(de->d_name)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            entry *grown = realloc(entries, (size_t)cap * sizeof *grown);
            if (!grown) {
                fprintf(stderr, "tiefsee cache: out of memory\n");
                rc = 1;
                break;
            }
            entries = grown;
        }
        classify(dir, de->d_name, &entries[n++]);
    }
    closedir(d);
    if (rc == 0) qsort(entries, (size_t)n, sizeof *entries, cmp_entry);
    uint64_t total = 0, freed = 0;
    int removed = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        const entry *e = &entries[i];
        const bool prunable = e->state == ENTRY_MODEL_CHANGED || e->state == ENTRY_MODEL_MISSING ||
                              e->state == ENTRY_UNUSABLE || e->state == ENTRY_ORPHAN;
        const bool remove_it = (mode == 1 && prunable) || (mode == 2 && (prunable || e->state == ENTRY_CURRENT));
        char detail[TS_RPC_PATH_MAX + 300], shown_path[PATH_MAX];
        if (e->model[0])
            snprintf(detail, sizeof detail, "%s%s%s", e->model, e->why[0] ? ": " : "", e->why);
        else
            snprintf(detail, sizeof detail, "%s", e->why);
        if (remove_it) {
            if (unlink(e->path) != 0) {
                fprintf(stderr, "tiefsee cache: cannot delete %s: %s\n", shown(e->path, shown_path, sizeof shown_path),
                        strerror(errno));
                rc = 1;
                continue;
            }
            printf("deleted %s (%.2f GB, %s%s%s)\n", shown(e->path, shown_path, sizeof shown_path), (double)e->bytes / 1e9,
                   state_name(e->state),
                   detail[0] ? "; " : "", detail);
            freed += e->bytes;
            removed++;
        } else {
            if (mode == 0)
                printf("%9.2f GB  %-26s %s%s%s\n", (double)e->bytes / 1e9, state_name(e->state),
                       shown(e->path, shown_path, sizeof shown_path),
                       detail[0] ? "  <- " : "", detail);
            total += e->bytes;
        }
    }
    if (rc == 0 && mode == 0) printf("%d file(s), %.2f GB in %s\n", n, (double)total / 1e9, dir);
    if (rc == 0 && mode != 0)
        printf("deleted %d file(s), %.2f GB freed; %d left (%.2f GB) in %s\n", removed, (double)freed / 1e9,
               n - removed, (double)total / 1e9, dir);
    free(entries);
    return rc;
}
