#pragma once
// Python's html.unescape on code points: numeric references (with the HTML5 replacements of
// invalid ones), the HTML5 named references, including those accepted without ';' and the
// longest-known-prefix rule for unknown names. Tables: cond/wan_clean_tables.h.
#include <string>
#include <string_view>

namespace ditgen {

std::u32string html_unescape(std::u32string_view text);

}  // namespace ditgen
