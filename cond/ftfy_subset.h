#pragma once
// The deterministic part of ftfy.fix_text (ftfy 6.3.1, default settings) that Wan applies to a
// prompt first: text cut into lines (segments of at most 1,000,000 characters), each fixed until
// nothing changes by HTML entity decoding (ftfy's own table and rules; skipped from the first
// line that holds '<' on), C1 controls read as Windows-1252, Latin ligatures split, full- and
// half-width forms made normal width, curly quotes made straight, line breaks made '\n', ANSI
// terminal escapes and some control characters removed.
// Not done: the mojibake repair (fix_encoding and its helpers) and the final NFC normalisation;
// docs/wan.md ("Tokenizer") says why and what that changes.
#include <string>
#include <string_view>

namespace ditgen {

std::u32string ftfy_fix_text_subset(std::u32string_view text);

}  // namespace ditgen
