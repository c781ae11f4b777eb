#pragma once
// Strict UTF-8 <-> code points for prompt text (the rules of Python's strict "utf-8" codec: no
// overlong forms, no surrogates, nothing above U+10FFFF).
#include <string>
#include <string_view>

namespace ditgen::utf8 {

// Throws std::invalid_argument naming `what`, the byte offset and the byte that starts the first
// ill-formed sequence.
std::u32string decode(std::string_view bytes, std::string_view what = "text");
std::string encode(std::u32string_view cps);
void append(std::string& out, char32_t cp);

}  // namespace ditgen::utf8
