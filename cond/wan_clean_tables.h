#pragma once
// Data tables of the prompt clean-up (cond/prompt_clean.h), generated from Python's html module,
// its str and regex whitespace classes and ftfy's data by tools/tokenizer/make_clean_tables.py
// into wan_clean_tables.cpp. Every table is sorted by its first column.
#include <algorithm>
#include <cstddef>
#include <string_view>

namespace ditgen::clean_tables {

struct NamedText {
  const char* name;  // ASCII
  const char* text;  // UTF-8
};
struct CodepointText {
  char32_t cp;
  const char* text;  // UTF-8
};
struct CodepointPair {
  char32_t a, b;
};

extern const NamedText kHtml5[];  // html.entities.html5 (names with and without ';')
extern const size_t kHtml5_count;
extern const CodepointPair kInvalidCharrefs[];  // html.unescape: reference -> replacement
extern const size_t kInvalidCharrefs_count;
extern const char32_t kInvalidCodepoints[];  // html.unescape: references that decode to ""
extern const size_t kInvalidCodepoints_count;
extern const char32_t kPyIsspace[];  // str.isspace (str.strip)
extern const size_t kPyIsspace_count;
extern const char32_t kRegexSpace[];  // \s of the regex module
extern const size_t kRegexSpace_count;
extern const CodepointPair kReDigitRanges[];  // \d of the re module, inclusive ranges
extern const size_t kReDigitRanges_count;
extern const NamedText kFtfyEntities[];  // ftfy's entities, names with ';' and without '&'
extern const size_t kFtfyEntities_count;
extern const CodepointText kFtfyLigatures[];
extern const size_t kFtfyLigatures_count;
extern const CodepointText kFtfyWidth[];
extern const size_t kFtfyWidth_count;
extern const char32_t kFtfyControl[];  // deleted by remove_control_chars
extern const size_t kFtfyControl_count;
extern const char32_t kFtfyC1[];  // fix_c1_controls of U+0080 + i, i < 32
extern const size_t kFtfyC1_count;
extern const char32_t kFtfySingleQuotes[];  // uncurl_quotes: -> '
extern const size_t kFtfySingleQuotes_count;
extern const char32_t kFtfyDoubleQuotes[];  // uncurl_quotes: -> "
extern const size_t kFtfyDoubleQuotes_count;

// The text of `name` in a sorted NamedText table, nullptr when it is not there.
inline const char* find_named(const NamedText* table, size_t count, std::string_view name) {
  const NamedText* end = table + count;
  const NamedText* it =
      std::lower_bound(table, end, name, [](const NamedText& e, std::string_view n) { return std::string_view(e.name) < n; });
  return it != end && std::string_view(it->name) == name ? it->text : nullptr;
}

}  // namespace ditgen::clean_tables
