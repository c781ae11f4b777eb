#include "cond/utf8.h"

#include <cstdio>
#include <stdexcept>

namespace ditgen::utf8 {

namespace {

[[noreturn]] void ill_formed(std::string_view what, size_t offset, unsigned char byte, const char* why) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", byte);
  throw std::invalid_argument(std::string(what) + " is not valid UTF-8: byte " + hex + " at offset " +
                              std::to_string(offset) + " (" + why + ")");
}

}  // namespace

std::u32string decode(std::string_view s, std::string_view what) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    int len;
    char32_t cp, min;
    if (b >= 0xC2 && b <= 0xDF) len = 2, cp = b & 0x1F, min = 0x80;
    else if (b >= 0xE0 && b <= 0xEF) len = 3, cp = b & 0x0F, min = 0x800;
    else if (b >= 0xF0 && b <= 0xF4) len = 4, cp = b & 0x07, min = 0x10000;
    else ill_formed(what, i, b, b < 0xC0 ? "a continuation byte where a character starts" : "a byte that never starts a character");
    if (i + size_t(len) > s.size()) ill_formed(what, i, b, "the sequence is cut short by the end of the text");
    for (int k = 1; k < len; ++k) {
      const unsigned char c = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((c & 0xC0) != 0x80) ill_formed(what, i, b, "the sequence is cut short by a byte that is not a continuation byte");
      cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < min) ill_formed(what, i, b, "an overlong form");
    if (cp >= 0xD800 && cp <= 0xDFFF) ill_formed(what, i, b, "a UTF-16 surrogate");
    if (cp > 0x10FFFF) ill_formed(what, i, b, "a code point above U+10FFFF");
    out.push_back(cp);
    i += size_t(len);
  }
  return out;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

std::string encode(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append(out, c);
  return out;
}

}  // namespace ditgen::utf8
