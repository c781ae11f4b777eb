// Wan2.1's prompt clean-up (cond/prompt_clean.h): against outputs of the official clean-up
// (tools/tokenizer/make_clean_cases.py), and its parts one by one.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cond/html_unescape.h"
#include "cond/prompt_clean.h"
#include "cond/utf8.h"

namespace ditgen {
namespace {

std::string data_path(const char* name) { return std::string(DITGEN_SOURCE_DIR) + "/tests/data/tokenizer/" + name; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(f);
}

std::string unescape(const std::string& s) { return utf8::encode(html_unescape(utf8::decode(s))); }

TEST(PromptClean, SameTextAsWansCleanUpOnRecordedCases) {
  const auto cases = read_json(data_path("clean_cases.json"));
  ASSERT_GE(cases.size(), 1000u);
  int wrong = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"], want = c["clean"];
    const std::string got = wan_clean(text);
    if (got != want && ++wrong <= 10) ADD_FAILURE() << "text " << c["text"].dump() << ": got " << nlohmann::json(got).dump() << ", Wan gives " << c["clean"].dump();
  }
  EXPECT_EQ(wrong, 0) << "of " << cases.size();
}

TEST(HtmlUnescape, NamedReferencesAsPythonDecodesThem) {
  EXPECT_EQ(unescape("&amp;"), "&");
  EXPECT_EQ(unescape("&amp"), "&");                // accepted without ';' (in the html5 table so)
  EXPECT_EQ(unescape("&ampx"), "&x");              // longest known prefix, rest kept
  EXPECT_EQ(unescape("&notit;"), "\xC2\xACit;");   // '&not' known, '&notit;' not
  EXPECT_EQ(unescape("&notin;"), "\xE2\x88\x89");  // the whole name wins over the prefix
  EXPECT_EQ(unescape("&eacute"), "\xC3\xA9");
  EXPECT_EQ(unescape("&Eacute;"), "\xC3\x89");
  EXPECT_EQ(unescape("&EACUTE;"), "&EACUTE;");  // not an html5 name
  EXPECT_EQ(unescape("&zz;"), "&zz;");
  EXPECT_EQ(unescape("& amp;"), "& amp;");
  EXPECT_EQ(unescape("&;"), "&;");
}

TEST(HtmlUnescape, NumericReferencesWithTheInvalidCodepointRules) {
  EXPECT_EQ(unescape("&#65;&#x42;&#X43"), "ABC");
  EXPECT_EQ(unescape("&#128;"), "\xE2\x82\xAC");     // Windows-1252 reading of C1 references
  EXPECT_EQ(unescape("&#0;"), "\xEF\xBF\xBD");       // U+FFFD
  EXPECT_EQ(unescape("&#xD800;"), "\xEF\xBF\xBD");   // surrogate
  EXPECT_EQ(unescape("&#x110000;"), "\xEF\xBF\xBD"); // above Unicode
  EXPECT_EQ(unescape("&#99999999999999999999999;"), "\xEF\xBF\xBD");
  EXPECT_EQ(unescape("a&#1;b&#xFFFF;c"), "abc");     // invalid code points decode to nothing
  EXPECT_EQ(unescape("&#x;&#;&#xZ;"), "&#x;&#;&#xZ;");
  EXPECT_EQ(unescape("&#0x41;"), "\xEF\xBF\xBDx41;");  // '&#0' then text
}

TEST(PromptClean, EntitiesAreDecodedAsWanDoes) {
  // ftfy decodes entities until nothing changes, then html.unescape runs twice.
  EXPECT_EQ(wan_clean("fish &amp;amp;amp;amp; chips"), "fish & chips");
  // From the first line holding '<' on, ftfy leaves entities alone: only the two html.unescape passes.
  EXPECT_EQ(wan_clean("a<b &amp;amp;amp;lt;"), "a<b &amp;lt;");
  EXPECT_EQ(wan_clean("&amp;amp;amp;lt;\na<b\n&amp;amp;amp;lt;"), "< a<b &amp;lt;");
  EXPECT_EQ(wan_clean("caf&eacute; &copy 2025"), "caf\xC3\xA9 \xC2\xA9 2025");
}

TEST(PromptClean, WhitespaceRunsBecomeOneSpaceAndEndsAreStripped) {
  EXPECT_EQ(wan_clean(""), "");
  EXPECT_EQ(wan_clean(" \t\r\n\xE3\x80\x80 "), "");
  EXPECT_EQ(wan_clean("  a \t\n  cat\xC2\xA0\xC2\xA0surfing  "), "a cat surfing");
  EXPECT_EQ(wan_clean("a&nbsp;&nbsp;b"), "a b");
  EXPECT_EQ(wan_clean("a\xE2\x80\x8B b"), "a\xE2\x80\x8B b");  // U+200B is not \s
  // U+001C..U+001F: str.strip removes them, the regex module's \s does not match them (and
  // ftfy removes them first anyway).
  EXPECT_EQ(wan_whitespace_clean(U"\x1c a\x1c\x1c b \x1f"), U"a\x1c\x1c b");
}

TEST(PromptClean, FtfyStepsThatAreReproduced) {
  EXPECT_EQ(wan_clean("\xE2\x80\x9Cquoted\xE2\x80\x9D \xE2\x80\x98single\xE2\x80\x99"), "\"quoted\" 'single'");
  EXPECT_EQ(wan_clean("\xEF\xAC\x81ne \xEF\xAC\x82ow"), "fine flow");                    // ligatures
  EXPECT_EQ(wan_clean("\xEF\xBC\xA6\xEF\xBC\xB5\xEF\xBC\xAC\xEF\xBC\xAC"), "FULL");   // full width
  EXPECT_EQ(wan_clean("\x1B[31mred\x1B[0m text"), "red text");                         // terminal escapes
  EXPECT_EQ(wan_clean("a\x01\x7F" "b\xEF\xBB\xBF" "c"), "abc");                          // control characters, BOM
  EXPECT_EQ(wan_clean("a\xC2\x93" "b\xC2\x94"), "a\"b\"");  // C1 controls read as Windows-1252, then uncurled
}

TEST(PromptClean, InvalidUtf8IsRefusedWithItsOffset) {
  const std::pair<std::string, std::string> bad[] = {
      {std::string("abc\xC3(", 5), "byte 0xC3 at offset 3"},
      {std::string("\xC0\x80", 2), "byte 0xC0 at offset 0"},          // overlong
      {std::string("ok \xED\xA0\x80", 6), "byte 0xED at offset 3"},   // surrogate
      {std::string("\xF4\x90\x80\x80", 4), "byte 0xF4 at offset 0"},  // above U+10FFFF
      {std::string("x\x80", 2), "byte 0x80 at offset 1"},             // stray continuation byte
      {std::string("ends in \xE2\x82", 10), "byte 0xE2 at offset 8"},  // cut short
  };
  for (const auto& [text, where] : bad) {
    try {
      wan_clean(text);
      ADD_FAILURE() << "accepted " << nlohmann::json::binary({text.begin(), text.end()}).dump();
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("prompt is not valid UTF-8: " + where), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ditgen
