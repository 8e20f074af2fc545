#include "arch/arch.h"

#include <string.h>

static const ts_arch *const all_archs[] = {&ts_arch_llama, &ts_arch_qwen2, &ts_arch_deepseek, &ts_arch_deepseek2};

const ts_arch *ts_arch_find(const char *name) {
    for (size_t i = 0; i < sizeof all_archs / sizeof all_archs[0]; i++)
        if (strcmp(all_archs[i]->name, name) == 0) return all_archs[i];
    return NULL;
}

/* The MoE archs are not listed yet: tests/model/test_loader.c pins this exact message; the list and
 * that test are to be updated together. */
const char *ts_arch_supported_list(void) { return "llama, qwen2"; }
