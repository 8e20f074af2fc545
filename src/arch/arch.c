#include "arch/arch.h"

#include <string.h>

static const ts_arch *const all_archs[] = {&ts_arch_llama, &ts_arch_qwen2, &ts_arch_deepseek, &ts_arch_deepseek2};

const ts_arch *ts_arch_find(const char *name) {
    for (size_t i = 0; i < sizeof all_archs / sizeof all_archs[0]; i++)
        if (strcmp(all_archs[i]->name, name) == 0) return all_archs[i];
    return NULL;
}

/* Spelled out once here (not joined at run time) so error messages need no allocation. Keep in
 * the order of all_archs; tests/model/test_loader.c checks the message. */
const char *ts_arch_supported_list(void) { return "llama, qwen2, deepseek, deepseek2"; }
