#include "cond/umt5_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "cond/prompt_clean.h"
#include "cond/spiece_model.h"

namespace ditgen {

namespace fs = std::filesystem;

std::string TokenizedPrompt::warning() const {
  if (dropped_tokens == 0) return "";
  return "prompt is " + std::to_string(int64_t(ids.size()) + dropped_tokens) + " tokens long with the end-of-sequence token; " +
         "the last " + std::to_string(dropped_tokens) + " were dropped to fit " + std::to_string(ids.size()) +
         " (as Wan2.1 truncates)";
}

UmT5Tokenizer::UmT5Tokenizer(UmT5Tokenizer&&) noexcept = default;
UmT5Tokenizer& UmT5Tokenizer::operator=(UmT5Tokenizer&&) noexcept = default;
UmT5Tokenizer::~UmT5Tokenizer() = default;

std::string UmT5Tokenizer::model_path_in(const std::string& model_dir) {
  const fs::path p = fs::path(model_dir) / "google" / "umt5-xxl" / "spiece.model";
  std::error_code ec;
  if (!fs::is_regular_file(p, ec))
    throw std::runtime_error("tokenizer model '" + p.string() + "' not found: a Wan2.1 model folder holds it as google/umt5-xxl/spiece.model");
  return p.string();
}

UmT5Tokenizer UmT5Tokenizer::load(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw std::runtime_error("tokenizer model '" + path + "' does not exist");
  if (!fs::is_regular_file(path, ec)) throw std::runtime_error("tokenizer model '" + path + "' is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("tokenizer model '" + path + "' cannot be opened for reading");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error("tokenizer model '" + path + "' could not be read");

  spiece::ModelProto proto;
  try {
    proto = spiece::parse_model_proto(bytes);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("tokenizer model '" + path + "' is not a SentencePiece model (" + e.what() + ")");
  }
  UmT5Tokenizer t;
  t.path_ = path;
  try {
    t.model_ = std::make_unique<spiece::UnigramModel>(std::move(proto));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("tokenizer model '" + path + "' cannot be used: " + e.what());
  }
  t.eos_id_ = t.model_->eos_id();
  t.pad_id_ = t.model_->pad_id();
  if (t.eos_id_ < 0 || t.pad_id_ < 0)
    throw std::runtime_error("tokenizer model '" + path + "' has no " + (t.eos_id_ < 0 ? "end-of-sequence" : "padding") +
                             " piece; umT5's spiece.model has </s> (1) and <pad> (0)");
  return t;
}

int UmT5Tokenizer::vocab_size() const { return model_->size(); }

std::vector<int32_t> UmT5Tokenizer::pieces(std::string_view text) const { return model_->encode(text); }

TokenizedPrompt UmT5Tokenizer::encode(std::string_view prompt, int max_len) const {
  if (max_len < 1) throw std::invalid_argument("tokenizer: max_len " + std::to_string(max_len) + " is below 1 (room for EOS)");
  TokenizedPrompt t;
  t.cleaned = wan_clean(prompt);
  t.ids = pieces(t.cleaned);
  // As Hugging Face truncates with special tokens: the text to max_len - 1, then EOS.
  const size_t keep = size_t(max_len) - 1;
  if (t.ids.size() > keep) {
    t.dropped_tokens = int64_t(t.ids.size() - keep);
    t.ids.resize(keep);
  }
  t.ids.push_back(eos_id_);
  return t;
}

PaddedIds UmT5Tokenizer::padded(const TokenizedPrompt& t, int len) const {
  if (len < 0 || size_t(len) < t.ids.size())
    throw std::invalid_argument("tokenizer: cannot pad " + std::to_string(t.ids.size()) + " tokens to " + std::to_string(len));
  PaddedIds p;
  p.ids = t.ids;
  p.ids.resize(size_t(len), pad_id_);
  p.mask.assign(size_t(len), 0);
  std::fill(p.mask.begin(), p.mask.begin() + std::ptrdiff_t(t.ids.size()), uint8_t(1));
  return p;
}

}  // namespace ditgen
