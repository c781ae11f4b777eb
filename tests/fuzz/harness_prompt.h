#pragma once
// Body of the fuzz_prompt harness: a prompt through Wan2.1's clean-up and the umT5 tokenizer
// (cond/umt5_tokenizer.h) with the test model of tests/data/tokenizer/; tests/robustness_test.cpp
// replays its seeds and regressions. The first byte picks max_len (1..64, so that truncation is
// exercised), the rest is the prompt. Contract: invalid UTF-8 is
// refused with std::invalid_argument naming the byte offset, valid UTF-8 never is; otherwise
// the ids are 1..max_len valid pieces ending in EOS, the dropped count adds up, and the cleaned
// text is valid UTF-8 without leading, trailing or repeated whitespace.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cond/prompt_clean.h"
#include "cond/umt5_tokenizer.h"
#include "cond/utf8.h"

namespace ditgen::fuzz {

inline const UmT5Tokenizer& prompt_tokenizer() {
  static const UmT5Tokenizer t = UmT5Tokenizer::load(std::string(DITGEN_SOURCE_DIR) + "/tests/data/tokenizer/test_spiece.model");
  return t;
}

// Prompts are cut to 8 KiB: ftfy's clean-up (and so the engine's) decodes nested entities one
// level per pass over the text, quadratic in the nesting depth; longer inputs only time out.
inline std::string prompt_one(const uint8_t* data, size_t size) {
  if (size == 0) return "";
  const int max_len = 1 + data[0] % 64;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, std::min<size_t>(size - 1, 8192));
  bool valid = true;
  try {
    utf8::decode(text);
  } catch (const std::invalid_argument&) {
    valid = false;
  }
  const UmT5Tokenizer& tok = prompt_tokenizer();
  TokenizedPrompt p;
  try {
    p = tok.encode(text, max_len);
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    if (valid) return "valid UTF-8 refused: " + msg;
    if (msg.find("prompt is not valid UTF-8: byte 0x") == std::string::npos || msg.find(" at offset ") == std::string::npos)
      return "invalid UTF-8 refused without its offset: " + msg;
    return "";
  }
  if (!valid) return "invalid UTF-8 accepted";
  if (p.ids.empty() || p.ids.size() > size_t(max_len)) return "got " + std::to_string(p.ids.size()) + " ids for max_len " + std::to_string(max_len);
  if (p.ids.back() != tok.eos_id()) return "last id " + std::to_string(p.ids.back()) + " is not EOS";
  for (int32_t id : p.ids)
    if (id < 0 || id >= tok.vocab_size()) return "id " + std::to_string(id) + " outside the vocabulary";
  const std::vector<int32_t> all = tok.pieces(p.cleaned);
  if (int64_t(all.size()) != int64_t(p.ids.size()) - 1 + p.dropped_tokens)
    return "dropped " + std::to_string(p.dropped_tokens) + " of " + std::to_string(all.size()) + " pieces but kept " + std::to_string(p.ids.size() - 1);
  if (!std::equal(p.ids.begin(), p.ids.end() - 1, all.begin())) return "kept ids are not the first pieces";
  std::u32string cleaned;
  try {
    cleaned = utf8::decode(p.cleaned);
  } catch (const std::invalid_argument& e) {
    return std::string("cleaned text is not valid UTF-8: ") + e.what();
  }
  if (wan_whitespace_clean(cleaned) != cleaned) return "cleaned text has leading, trailing or repeated whitespace";
  return "";
}

}  // namespace ditgen::fuzz
