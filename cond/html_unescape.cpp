#include "cond/html_unescape.h"

#include <algorithm>

#include "cond/utf8.h"
#include "cond/wan_clean_tables.h"

namespace ditgen {

namespace ct = clean_tables;

namespace {

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_hex(char32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char32_t c) { return is_digit(c) ? int(c - '0') : int((c | 0x20) - 'a' + 10); }

void append_utf8_text(std::u32string& out, const char* text) {
  out += utf8::decode(text, "entity table");
}

// The value of a numeric reference, saturated above U+10FFFF (every such value decodes alike).
char32_t numeric_value(std::u32string_view digits, int base) {
  uint64_t v = 0;
  for (char32_t c : digits) {
    v = v * uint64_t(base) + uint64_t(base == 16 ? hex_value(c) : int(c - '0'));
    if (v > 0x110000) v = 0x110000;
  }
  return char32_t(v);
}

// What a numeric reference decodes to: html.unescape's invalid-reference rules.
void append_numeric(std::u32string& out, char32_t num) {
  const auto* ref = std::lower_bound(ct::kInvalidCharrefs, ct::kInvalidCharrefs + ct::kInvalidCharrefs_count, num,
                                     [](const ct::CodepointPair& p, char32_t v) { return p.a < v; });
  if (ref != ct::kInvalidCharrefs + ct::kInvalidCharrefs_count && ref->a == num) {
    out.push_back(ref->b);
    return;
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out.push_back(0xFFFD);
    return;
  }
  if (std::binary_search(ct::kInvalidCodepoints, ct::kInvalidCodepoints + ct::kInvalidCodepoints_count, num)) return;
  out.push_back(num);
}

// The characters a named reference may hold (html.unescape's pattern: up to 32 of them).
bool name_char(char32_t c) { return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';'); }

// html.entities.html5 lookup of a candidate name given as code points (table names are ASCII).
const char* lookup(std::u32string_view name) {
  std::string ascii;
  for (char32_t c : name) {
    if (c >= 0x80) return nullptr;
    ascii.push_back(char(c));
  }
  return ct::find_named(ct::kHtml5, ct::kHtml5_count, ascii);
}

}  // namespace

std::u32string html_unescape(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    const size_t start = i + 1;
    // '#' digits, or '#x' hex digits, each with an optional ';'.
    if (start < n && s[start] == U'#') {
      size_t j = start + 1;
      int base = 10;
      if (j < n && is_digit(s[j])) {
        while (j < n && is_digit(s[j])) ++j;
      } else if (j + 1 < n && (s[j] == U'x' || s[j] == U'X') && is_hex(s[j + 1])) {
        base = 16;
        ++j;
        while (j < n && is_hex(s[j])) ++j;
      } else {
        out.push_back(U'&');  // no reference here ('#' cannot start a name)
        ++i;
        continue;
      }
      const size_t digits_from = start + 1 + (base == 16 ? 1 : 0);
      append_numeric(out, numeric_value(s.substr(digits_from, j - digits_from), base));
      if (j < n && s[j] == U';') ++j;
      i = j;
      continue;
    }
    // A name: 1..32 name characters and an optional ';'.
    size_t j = start;
    while (j < n && j - start < 32 && name_char(s[j])) ++j;
    if (j == start) {
      out.push_back(U'&');
      ++i;
      continue;
    }
    if (j < n && s[j] == U';') ++j;
    const std::u32string_view name = s.substr(start, j - start);
    if (const char* t = lookup(name)) {
      append_utf8_text(out, t);
    } else {
      // The longest known prefix of at least two characters, the rest kept as written.
      size_t x = name.size() - 1;
      const char* found = nullptr;
      for (; x >= 2; --x)
        if ((found = lookup(name.substr(0, x)))) break;
      if (found) {
        append_utf8_text(out, found);
        out += name.substr(x);
      } else {
        out.push_back(U'&');
        out += name;
      }
    }
    i = j;
  }
  return out;
}

}  // namespace ditgen
