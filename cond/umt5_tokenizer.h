#pragma once
// Wan2.1's prompt tokenizer (wan/modules/t5.py, T5EncoderModel: HuggingfaceTokenizer of
// google/umt5-xxl, seq_len 512, clean='whitespace'): the prompt cleaned as Wan cleans it
// (cond/prompt_clean.h), split into pieces by the SentencePiece model shipped with the
// checkpoint (google/umt5-xxl/spiece.model), the end-of-sequence token appended, cut to
// max_len with the EOS kept as the last token, padded with the pad id. docs/wan.md
// ("Tokenizer") says what differs from the Hugging Face tokenizer Wan calls.
// The model file is read and applied by the engine (cond/spiece_model.h), with the ids the
// SentencePiece library gives; docs/wan-tokenizer.md says why it does not link the library.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ditgen {

namespace spiece {
class UnigramModel;
}

struct TokenizedPrompt {
  std::vector<int32_t> ids;    // (n,) the prompt's pieces then EOS, 1 <= n <= max_len
  int64_t dropped_tokens = 0;  // pieces cut off to fit max_len (0: none)
  std::string cleaned;         // the text after the clean-up, as tokenized

  // "" when nothing was dropped; else one line for the user saying how many tokens were cut.
  std::string warning() const;
};

struct PaddedIds {
  std::vector<int32_t> ids;   // (len,) the tokens, then the pad id
  std::vector<uint8_t> mask;  // (len,) 1 for the real tokens (EOS included), 0 for padding
};

class UmT5Tokenizer {
 public:
  static constexpr int kWanTextLen = 512;  // Wan2.1's text_len

  // Throws std::runtime_error naming the file: missing, unreadable, not a SentencePiece model
  // (what is wrong and at which byte), not a unigram one, or one without end-of-sequence and
  // padding pieces.
  static UmT5Tokenizer load(const std::string& spiece_model_path);
  // The tokenizer file of a Wan2.1 model folder: DIR/google/umt5-xxl/spiece.model. Throws
  // std::runtime_error naming the path looked for when it is not there.
  static std::string model_path_in(const std::string& model_dir);

  UmT5Tokenizer(UmT5Tokenizer&&) noexcept;
  UmT5Tokenizer& operator=(UmT5Tokenizer&&) noexcept;
  ~UmT5Tokenizer();

  // Cleans and tokenizes a UTF-8 prompt. Throws std::invalid_argument for invalid UTF-8 (naming
  // the byte offset) or max_len < 1.
  TokenizedPrompt encode(std::string_view prompt, int max_len = kWanTextLen) const;
  // The model's pieces of already-clean text: no clean-up, no EOS, no truncation.
  std::vector<int32_t> pieces(std::string_view text) const;
  // t.ids padded to len (>= t.ids.size()) with the pad id, and the attention mask.
  PaddedIds padded(const TokenizedPrompt& t, int len = kWanTextLen) const;

  int vocab_size() const;  // pieces in the model (umT5: 256,000; the encoder's table is larger)
  int eos_id() const { return eos_id_; }
  int pad_id() const { return pad_id_; }
  const std::string& path() const { return path_; }

 private:
  UmT5Tokenizer() = default;
  std::unique_ptr<spiece::UnigramModel> model_;
  std::string path_;
  int eos_id_ = -1, pad_id_ = -1;
};

}  // namespace ditgen
