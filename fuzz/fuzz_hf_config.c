/* libFuzzer target for reading a Hugging Face config.json (the synth generator's outside input):
 * arbitrary bytes must give a config or one error line, never a crash or a model too large to
 * describe. Only the parse and validation run; nothing is written. */
#include <stdint.h>

#include "fuzz_common.h"
#include "synth/synth_model.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    synth_model m;
    ts_err err = {{0}};
    if (synth_model_from_hf_config(path, &m, &err) != 0 || synth_model_validate(&m, &err) != 0)
        fuzz_check_message(err.msg);
    close(fd);
    return 0;
}
