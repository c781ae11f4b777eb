#include "cond/prompt_clean.h"

#include <algorithm>

#include "cond/ftfy_subset.h"
#include "cond/html_unescape.h"
#include "cond/utf8.h"
#include "cond/wan_clean_tables.h"

namespace ditgen {

namespace ct = clean_tables;

namespace {

// str.isspace() (what str.strip removes) is wider than the regex module's \s: it also holds
// U+001C..U+001F.
bool py_space(char32_t c) { return std::binary_search(ct::kPyIsspace, ct::kPyIsspace + ct::kPyIsspace_count, c); }
bool regex_space(char32_t c) { return std::binary_search(ct::kRegexSpace, ct::kRegexSpace + ct::kRegexSpace_count, c); }

std::u32string_view py_strip(std::u32string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && py_space(s[a])) ++a;
  while (b > a && py_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

}  // namespace

std::u32string wan_whitespace_clean(std::u32string_view text) {
  const std::u32string_view s = py_strip(text);
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (!regex_space(s[i])) {
      out.push_back(s[i++]);
      continue;
    }
    while (i < s.size() && regex_space(s[i])) ++i;
    out.push_back(U' ');
  }
  return std::u32string(py_strip(out));
}

std::string wan_clean(std::string_view prompt) {
  const std::u32string fixed = ftfy_fix_text_subset(utf8::decode(prompt, "prompt"));
  return utf8::encode(wan_whitespace_clean(html_unescape(html_unescape(fixed))));
}

}  // namespace ditgen
