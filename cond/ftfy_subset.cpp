#include "cond/ftfy_subset.h"

#include <algorithm>

#include "cond/html_unescape.h"
#include "cond/utf8.h"
#include "cond/wan_clean_tables.h"

namespace ditgen {

namespace ct = clean_tables;

namespace {

constexpr size_t kMaxSegment = 1000000;  // ftfy's max_decode_length

bool in(const char32_t* table, size_t count, char32_t c) { return std::binary_search(table, table + count, c); }

const char* mapped(const ct::CodepointText* table, size_t count, char32_t c) {
  const auto* end = table + count;
  const auto* it = std::lower_bound(table, end, c, [](const ct::CodepointText& e, char32_t v) { return e.cp < v; });
  return it != end && it->cp == c ? it->text : nullptr;
}

bool ascii_alnum(char32_t c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

bool re_digit(char32_t c) {
  const auto* end = ct::kReDigitRanges + ct::kReDigitRanges_count;
  const auto* it = std::upper_bound(ct::kReDigitRanges, end, c, [](char32_t v, const ct::CodepointPair& r) { return v < r.a; });
  return it != ct::kReDigitRanges && c <= (it - 1)->b;
}

const char* ftfy_entity(std::string_view name) { return ct::find_named(ct::kFtfyEntities, ct::kFtfyEntities_count, name); }

// ftfy's unescape_html: '&', an optional '#', 1..24 ASCII letters or digits, ';'. Known names
// from its table; numeric ones through html.unescape, kept as written unless that consumed the ';'.
std::u32string unescape(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    const bool numeric = j < s.size() && s[j] == U'#';
    if (numeric) ++j;
    const size_t name_from = j;
    while (j < s.size() && j - name_from < 24 && ascii_alnum(s[j])) ++j;
    if (j == name_from || j >= s.size() || s[j] != U';') {
      out.push_back(s[i++]);
      continue;
    }
    ++j;  // the ';'
    const std::u32string_view ref = s.substr(i, j - i);
    std::string name;  // ASCII by construction, without the '&'
    for (char32_t c : ref.substr(1)) name.push_back(char(c));
    if (const char* t = ftfy_entity(name)) {
      out += utf8::decode(t, "entity table");
    } else if (numeric) {
      const std::u32string u = html_unescape(ref);
      out += u.find(U';') == std::u32string::npos ? u : std::u32string(ref);
    } else {
      out += ref;
    }
    i = j;
  }
  return out;
}

// ANSI escapes: ESC '[' (decimal digits as Python's re sees them, or ';')* one ASCII letter.
std::u32string remove_terminal_escapes(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == 0x1B && i + 1 < s.size() && s[i + 1] == U'[') {
      size_t j = i + 2;
      while (j < s.size() && (s[j] == U';' || re_digit(s[j]))) ++j;
      if (j < s.size() && s[j] < 0x80 && (s[j] | 0x20) >= 'a' && (s[j] | 0x20) <= 'z') {
        i = j + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

// The character-by-character fixers in ftfy's order: C1 controls, ligatures, width, quotes.
std::u32string per_character(std::u32string_view s) {
  std::u32string a;
  a.reserve(s.size());
  for (char32_t c : s) a.push_back(c >= 0x80 && c < 0xA0 ? ct::kFtfyC1[c - 0x80] : c);
  std::u32string b;
  b.reserve(a.size());
  for (char32_t c : a) {
    if (const char* t = mapped(ct::kFtfyLigatures, ct::kFtfyLigatures_count, c)) b += utf8::decode(t, "ligature table");
    else b.push_back(c);
  }
  std::u32string d;
  d.reserve(b.size());
  for (char32_t c : b) {
    if (const char* t = mapped(ct::kFtfyWidth, ct::kFtfyWidth_count, c)) d += utf8::decode(t, "width table");
    else d.push_back(c);
  }
  for (char32_t& c : d) {
    if (in(ct::kFtfyDoubleQuotes, ct::kFtfyDoubleQuotes_count, c)) c = U'"';
    else if (in(ct::kFtfySingleQuotes, ct::kFtfySingleQuotes_count, c)) c = U'\'';
  }
  return d;
}

// CRLF, CR, U+2028, U+2029 and U+0085 each become '\n'.
std::u32string fix_line_breaks(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c == U'\r' && i + 1 < s.size() && s[i + 1] == U'\n') continue;  // the '\n' follows
    out.push_back(c == U'\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? U'\n' : c);
  }
  return out;
}

std::u32string remove_control_chars(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s)
    if (!in(ct::kFtfyControl, ct::kFtfyControl_count, c)) out.push_back(c);
  return out;
}

std::u32string fix_segment(std::u32string text, bool unescape_html) {
  for (;;) {
    std::u32string t = unescape_html ? unescape(text) : text;
    t = remove_control_chars(remove_terminal_escapes(fix_line_breaks(per_character(t))));
    if (t == text) return t;
    text = std::move(t);
  }
}

}  // namespace

std::u32string ftfy_fix_text_subset(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  bool unescape_html = true;  // ftfy's "auto": off for good from the first segment holding '<'
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find(U'\n', pos);
    size_t end = nl == std::u32string_view::npos ? text.size() : nl + 1;
    end = std::min(end, pos + kMaxSegment);
    const std::u32string_view segment = text.substr(pos, end - pos);
    if (unescape_html && segment.find(U'<') != std::u32string_view::npos) unescape_html = false;
    out += fix_segment(std::u32string(segment), unescape_html);
    pos = end;
  }
  return out;
}

}  // namespace ditgen
