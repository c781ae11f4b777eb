// umT5 tokenizer (cond/umt5_tokenizer.h) on the small SentencePiece models of tests/data/tokenizer/
// (tools/tokenizer/make_test_tokenizer.py): the ids of the SentencePiece Python package, EOS,
// truncation to 512 with the EOS kept, padding, and bad model files. The fuzz inputs of the
// prompt harness are replayed by tests/robustness_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <tuple>
#include <nlohmann/json.hpp>

#include "cond/umt5_tokenizer.h"
#include "tests/test_util.h"

namespace ditgen {
namespace {

namespace fs = std::filesystem;

const std::string kModel = std::string(DITGEN_SOURCE_DIR) + "/tests/data/tokenizer/test_spiece.model";

const UmT5Tokenizer& tokenizer() {
  static const UmT5Tokenizer t = UmT5Tokenizer::load(kModel);
  return t;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

// "w w w ...": n words, each one piece of the test model.
std::string words(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += i ? " a" : "a";
  return s;
}

TEST(UmT5Tokenizer, LoadsTheModelsSpecialIds) {
  const auto& t = tokenizer();
  EXPECT_EQ(t.vocab_size(), 1000);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.path(), kModel);
}

// The three test models (byte fallback and nmt_nfkc; no fallback, nfkc_cf, user-defined pieces,
// whitespace kept; identity, whitespace as a suffix, unescaped) on their recorded strings.
TEST(UmT5Tokenizer, SameIdsAsTheSentencePiecePythonPackage) {
  const std::tuple<const char*, const char*, size_t> sets[] = {
      {"test_spiece.model", "cases.json", 1000}, {"test_spiece_nofallback.model", "cases_nofallback.json", 300},
      {"test_spiece_tiny.model", "cases_tiny.json", 300}};
  for (const auto& [model, cases_file, at_least] : sets) {
    const UmT5Tokenizer t = UmT5Tokenizer::load(std::string(DITGEN_SOURCE_DIR) + "/tests/data/tokenizer/" + model);
    std::ifstream f(std::string(DITGEN_SOURCE_DIR) + "/tests/data/tokenizer/" + cases_file);
    ASSERT_TRUE(f) << cases_file;
    const auto cases = nlohmann::json::parse(f);
    ASSERT_GE(cases.size(), at_least) << cases_file;
    int wrong = 0;
    for (const auto& c : cases) {
      const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
      const std::vector<int32_t> got = t.pieces(c["text"].get<std::string>());
      if (got != want && ++wrong <= 10)
        ADD_FAILURE() << model << ": text " << c["text"].dump() << ": got " << nlohmann::json(got).dump() << ", want " << nlohmann::json(want).dump();
    }
    EXPECT_EQ(wrong, 0) << model << ": of " << cases.size();
  }
}

TEST(UmT5Tokenizer, CleansThenAppendsEos) {
  const auto& t = tokenizer();
  const TokenizedPrompt p = t.encode("  A cat\t\tsurfs &amp; waves\n");
  EXPECT_EQ(p.cleaned, "A cat surfs & waves");
  std::vector<int32_t> want = t.pieces("A cat surfs & waves");
  want.push_back(1);
  EXPECT_EQ(p.ids, want);
  EXPECT_EQ(p.dropped_tokens, 0);
  EXPECT_EQ(p.warning(), "");
}

TEST(UmT5Tokenizer, EmptyAndWhitespaceOnlyPromptsAreEosAlone) {
  for (const char* s : {"", " ", "\t\n \xE3\x80\x80", "&nbsp;"}) {
    const TokenizedPrompt p = tokenizer().encode(s);
    EXPECT_EQ(p.ids, std::vector<int32_t>{1}) << s;
    EXPECT_EQ(p.cleaned, "") << s;
  }
}

TEST(UmT5Tokenizer, TruncatesTo512KeepingEosAndSaysWhatWasDropped) {
  const auto& t = tokenizer();
  ASSERT_EQ(t.pieces(words(700)).size(), 700u);
  const TokenizedPrompt fits = t.encode(words(511));
  EXPECT_EQ(fits.ids.size(), 512u);
  EXPECT_EQ(fits.dropped_tokens, 0);
  EXPECT_EQ(fits.ids.back(), 1);

  const TokenizedPrompt longer = t.encode(words(700));
  ASSERT_EQ(longer.ids.size(), 512u);
  EXPECT_EQ(longer.ids.back(), 1);
  const std::vector<int32_t> all = t.pieces(words(700));
  EXPECT_TRUE(std::equal(longer.ids.begin(), longer.ids.end() - 1, all.begin()));
  EXPECT_EQ(longer.dropped_tokens, 700 - 511);
  EXPECT_EQ(longer.warning(),
            "prompt is 701 tokens long with the end-of-sequence token; the last 189 were dropped to fit 512 (as Wan2.1 truncates)");

  const TokenizedPrompt short_max = t.encode(words(5), 3);
  EXPECT_EQ(short_max.ids.size(), 3u);
  EXPECT_EQ(short_max.ids.back(), 1);
  EXPECT_EQ(short_max.dropped_tokens, 3);
  EXPECT_EQ(t.encode(words(5), 1).ids, std::vector<int32_t>{1});
  EXPECT_THROW(t.encode("a", 0), std::invalid_argument);
}

TEST(UmT5Tokenizer, PadsWithThePadIdAndMasksTheRealTokens) {
  const auto& t = tokenizer();
  const TokenizedPrompt p = t.encode("a cat");
  const PaddedIds padded = t.padded(p);
  ASSERT_EQ(padded.ids.size(), 512u);
  ASSERT_EQ(padded.mask.size(), 512u);
  for (size_t i = 0; i < 512; ++i) {
    EXPECT_EQ(padded.mask[i], i < p.ids.size() ? 1 : 0) << i;
    EXPECT_EQ(padded.ids[i], i < p.ids.size() ? p.ids[i] : 0) << i;
  }
  EXPECT_THROW(t.padded(p, int(p.ids.size()) - 1), std::invalid_argument);
}

TEST(UmT5Tokenizer, InvalidUtf8PromptIsRefused) {
  try {
    tokenizer().encode(std::string("a cat \xFF surfing", 15));
    FAIL() << "accepted invalid UTF-8";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("prompt is not valid UTF-8: byte 0xFF at offset 6"), std::string::npos) << e.what();
  }
}

TEST(UmT5Tokenizer, MissingModelFileIsNamed) {
  test::TempDir dir;
  const std::string p = (dir.path / "spiece.model").string();
  try {
    UmT5Tokenizer::load(p);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "tokenizer model '" + p + "' does not exist");
  }
  try {
    UmT5Tokenizer::load(dir.path.string());
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "tokenizer model '" + dir.path.string() + "' is not a regular file");
  }
}

TEST(UmT5Tokenizer, CorruptModelFilesAreNamed) {
  test::TempDir dir;
  const std::string model = slurp(kModel);
  const std::pair<const char*, std::string> bad[] = {
      {"empty", ""},
      {"text", "this is not a tokenizer model\n"},
      {"truncated", model.substr(0, model.size() / 2)},
      {"garbage", std::string(4096, '\xFF')},
  };
  for (const auto& [name, bytes] : bad) {
    const std::string p = (dir.path / (std::string(name) + ".model")).string();
    write(p, bytes);
    try {
      UmT5Tokenizer::load(p);
      ADD_FAILURE() << name << " loaded";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("tokenizer model '" + p + "' "), std::string::npos) << e.what();
    }
  }
}

TEST(UmT5Tokenizer, FindsTheModelInAWanFolder) {
  test::TempDir dir;
  EXPECT_THROW(
      {
        try {
          UmT5Tokenizer::model_path_in(dir.path.string());
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find((dir.path / "google/umt5-xxl/spiece.model").string()), std::string::npos) << e.what();
          throw;
        }
      },
      std::runtime_error);
  fs::create_directories(dir.path / "google/umt5-xxl");
  fs::copy_file(kModel, dir.path / "google/umt5-xxl/spiece.model");
  const std::string p = UmT5Tokenizer::model_path_in(dir.path.string());
  EXPECT_EQ(p, (dir.path / "google/umt5-xxl/spiece.model").string());
  EXPECT_EQ(UmT5Tokenizer::load(p).encode("a cat").ids, tokenizer().encode("a cat").ids);
}

}  // namespace
}  // namespace ditgen
