/* The texts of DeepSeek's chat and tool-call special tokens (fullwidth bar U+FF5C, and U+2581 for the
 * word separator, as the tokenizer spells them), shared by the renderer and the tool-call parser so
 * both read and write the same bytes. */
#ifndef TS_CHAT_DS_MARKERS_H
#define TS_CHAT_DS_MARKERS_H

#define BAR "\xef\xbd\x9c"
#define SEP "\xe2\x96\x81"
#define U_TAG "<" BAR "User" BAR ">"
#define A_TAG "<" BAR "Assistant" BAR ">"
#define CALLS_BEGIN "<" BAR "tool" SEP "calls" SEP "begin" BAR ">"
#define CALLS_END "<" BAR "tool" SEP "calls" SEP "end" BAR ">"
#define CALL_BEGIN "<" BAR "tool" SEP "call" SEP "begin" BAR ">"
#define CALL_END "<" BAR "tool" SEP "call" SEP "end" BAR ">"
#define TOOL_SEP "<" BAR "tool" SEP "sep" BAR ">"
#define OUTPUTS_BEGIN "<" BAR "tool" SEP "outputs" SEP "begin" BAR ">"
#define OUTPUTS_END "<" BAR "tool" SEP "outputs" SEP "end" BAR ">"
#define OUTPUT_BEGIN "<" BAR "tool" SEP "output" SEP "begin" BAR ">"
#define OUTPUT_END "<" BAR "tool" SEP "output" SEP "end" BAR ">"

#endif
