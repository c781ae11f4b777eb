#pragma once
// Wan2.1's prompt clean-up before tokenizing (wan/modules/tokenizers.py, clean='whitespace'):
//   whitespace_clean(basic_clean(text)) = ftfy.fix_text, html.unescape twice, str.strip, then every
//   run of the regex module's \s made one ' ', str.strip.
// ftfy.fix_text is reproduced in part (cond/ftfy_subset.h); the rest exactly. docs/wan.md
// ("Tokenizer") lists what differs from Wan.
#include <string>
#include <string_view>

namespace ditgen {

// UTF-8 in, UTF-8 out. Throws std::invalid_argument (naming the byte offset) on invalid UTF-8.
std::string wan_clean(std::string_view prompt);

// The two whitespace steps alone, on code points: str.strip, runs of \s to ' ', str.strip.
std::u32string wan_whitespace_clean(std::u32string_view text);

}  // namespace ditgen
