#pragma once
// SentencePiece model files (spiece.model) read and applied by the engine itself: the protobuf
// encoding of sentencepiece_model.proto's ModelProto parsed by hand, the normaliser (the
// precompiled charsmap's double-array trie, whitespace handling, the dummy prefix), and the unigram
// encoder (best segmentation, unknown characters, byte fallback), each behaving as SentencePiece
// 0.1.97 does so that the ids are the library's. Why not the library: docs/wan-tokenizer.md
// ("Reading the model").
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ditgen::spiece {

// ModelProto.SentencePiece.Type; the numbers are the file's.
enum class PieceType : uint8_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct Piece {
  std::string text;
  float score = 0;
  PieceType type = PieceType::kNormal;
};

// The TrainerSpec fields that change encoding; defaults are the .proto's for an absent field.
struct TrainerSpec {
  int32_t model_type = 1;  // 1 unigram, 2 BPE, 3 word, 4 char
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";
  std::string unk_surface = " \xE2\x81\x87 ";
};

struct NormalizerSpec {
  std::string name;
  std::string precompiled_charsmap;  // empty: no rules (identity)
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

struct ModelProto {
  std::vector<Piece> pieces;
  TrainerSpec trainer_spec;
  NormalizerSpec normalizer_spec;
  bool has_trainer_spec = false, has_normalizer_spec = false;
};

// Parses a serialized ModelProto; unknown fields are skipped, a repeated embedded message is
// merged as protobuf merges it. Throws std::runtime_error saying what is wrong and at which byte
// (a length or varint past the end, an unknown wire type or enum value); never reads past `bytes`.
ModelProto parse_model_proto(std::string_view bytes);

// The precompiled charsmap: a uint32 (little-endian) byte size of a Darts-clone double array, its
// units, then the NUL-terminated replacement strings its leaves point into.
class CharsMap {
 public:
  CharsMap() = default;  // no rules
  // Throws std::runtime_error when the blob is malformed (sizes, or a leaf outside the strings).
  explicit CharsMap(std::string_view blob);

  // The longest rule matching a prefix of `s`: {replacement, bytes of `s` it replaces}; {"", 0}
  // when none matches.
  std::pair<std::string_view, size_t> longest_match(std::string_view s) const;
  bool empty() const { return units_.empty(); }

 private:
  std::vector<uint32_t> units_;
  std::string strings_;
};

// A byte trie over keys with int32 values; children kept sorted so a walk is a few binary searches.
class ByteTrie {
 public:
  // keys: distinct, any order.
  void build(std::vector<std::pair<std::string_view, int32_t>> keys);
  bool empty() const { return nodes_.size() <= 1; }
  static constexpr int32_t kRoot = 0;
  int32_t child(int32_t node, uint8_t byte) const;  // -1: no such edge
  int32_t value(int32_t node) const { return nodes_[size_t(node)].value; }  // -1: no key ends here
  // Byte length of the longest key that prefixes s (0: none).
  size_t longest_prefix(std::string_view s) const;

 private:
  struct Node {
    int32_t value = -1;
    uint32_t first = 0;  // children: nodes_[first, first + count), labels_ sorted
    uint32_t count = 0;
  };
  std::vector<Node> nodes_;
  std::vector<uint8_t> labels_;  // labels_[i]: the byte on the edge into node i
};

// A unigram model ready to encode: pieces indexed, charsmap decoded, special ids resolved.
class UnigramModel {
 public:
  // Throws std::runtime_error for a model SentencePiece refuses (no pieces, an empty or duplicate
  // piece, no or two unknown pieces, byte pieces without byte fallback, a malformed charsmap) and
  // for anything but a unigram model, or one without trainer_spec or normalizer_spec.
  explicit UnigramModel(ModelProto proto);
  // Movable, not copyable: the piece indexes point into pieces_' strings.
  UnigramModel(UnigramModel&&) noexcept = default;
  UnigramModel& operator=(UnigramModel&&) noexcept = default;
  UnigramModel(const UnigramModel&) = delete;
  UnigramModel& operator=(const UnigramModel&) = delete;

  // SentencePiece's normalisation of `text` (charsmap, whitespace, dummy prefix, U+2581).
  std::string normalize(std::string_view text) const;
  // The ids SentencePieceProcessor::Encode gives `text` (no BOS/EOS).
  std::vector<int32_t> encode(std::string_view text) const;

  int size() const { return int(pieces_.size()); }
  const Piece& piece(int id) const { return pieces_[size_t(id)]; }
  // As SentencePiece looks a piece up: control, unknown and byte pieces first, else the others,
  // else the unknown id.
  int piece_to_id(std::string_view piece) const;
  int unk_id() const { return unk_id_; }
  int eos_id() const { return eos_id_; }  // -1 unless the trainer's eos piece is a control piece
  int pad_id() const { return pad_id_; }  // likewise for the pad piece
  const TrainerSpec& trainer_spec() const { return trainer_; }
  const NormalizerSpec& normalizer_spec() const { return normalizer_; }

 private:
  // {normalised text of the prefix, input bytes consumed} at the start of `s`.
  std::pair<std::string_view, size_t> normalize_prefix(std::string_view s) const;

  std::vector<Piece> pieces_;
  TrainerSpec trainer_;
  NormalizerSpec normalizer_;
  CharsMap charsmap_;
  ByteTrie pieces_trie_;     // normal and user-defined pieces
  ByteTrie user_defined_;    // user-defined pieces: kept whole by the normaliser
  std::vector<std::pair<std::string_view, int32_t>> reserved_sorted_, others_sorted_;
  int32_t byte_ids_[256] = {};
  float min_score_ = 0, max_score_ = 0;
  int unk_id_ = -1, eos_id_ = -1, pad_id_ = -1;
};

}  // namespace ditgen::spiece
