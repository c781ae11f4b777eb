// The SentencePiece model reader (cond/spiece_model.h): the specs as the test models hold them,
// the charsmap's rules, the normaliser's settings, ties and unknown characters on a hand-built
// model, malformed UTF-8 as SentencePiece replaces it, and damaged files (every truncation of a
// small model, flipped bytes, a non-unigram type, broken pieces) refused with a clear error.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "cond/spiece_model.h"
#include "cond/umt5_tokenizer.h"
#include "tests/test_util.h"

namespace ditgen::spiece {
namespace {

namespace fs = std::filesystem;

std::string data(const std::string& name) { return std::string(DITGEN_SOURCE_DIR) + "/tests/data/tokenizer/" + name; }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

UnigramModel load(const std::string& bytes) { return UnigramModel(parse_model_proto(bytes)); }

// The error of loading `bytes`; "" when it loads.
std::string load_error(const std::string& bytes) {
  try {
    load(bytes);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------- a protobuf writer for tests

std::string varint(uint64_t v) {
  std::string s;
  do {
    s += char((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return s;
}
std::string field_varint(uint32_t n, uint64_t v) { return varint(uint64_t(n) << 3) + varint(v); }
std::string field_bytes(uint32_t n, const std::string& b) { return varint(uint64_t(n) << 3 | 2) + varint(b.size()) + b; }
std::string field_float(uint32_t n, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  std::string s = varint(uint64_t(n) << 3 | 5);
  for (int i = 0; i < 4; ++i) s += char(bits >> (8 * i));
  return s;
}
std::string piece(const std::string& text, float score, PieceType type = PieceType::kNormal) {
  return field_bytes(1, field_bytes(1, text) + field_float(2, score) + field_varint(3, uint64_t(type)));
}

// <unk>, ▁, a, b, ab, ▁a; a unigram trainer_spec; an empty normalizer_spec (no charsmap: identity).
std::string hand_model(const std::string& extra_pieces = "", const std::string& trainer = field_varint(3, 1)) {
  return piece("<unk>", 0, PieceType::kUnknown) + piece("\xE2\x96\x81", -3) + piece("a", -1) + piece("b", -2) + piece("ab", -1.5f) +
         piece("\xE2\x96\x81" "a", -2.5f) + extra_pieces + field_bytes(2, trainer) + field_bytes(3, "");
}

// The model's top-level fields with `extra` appended to the body of each field `number`.
std::string append_to_field(const std::string& model, uint32_t number, const std::string& extra) {
  std::string out;
  size_t i = 0;
  const auto read = [&] {
    uint64_t v = 0;
    for (int s = 0;; s += 7) {
      const uint8_t b = uint8_t(model.at(i++));
      v |= uint64_t(b & 0x7F) << s;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < model.size()) {
    const uint64_t tag = read();
    const uint64_t len = read();
    std::string body = model.substr(i, len);
    i += len;
    if ((tag >> 3) == number) body += extra;
    out += varint(tag) + varint(body.size()) + body;
  }
  return out;
}

// ------------------------------------------------------------------------------------ specs

TEST(SpieceModel, ReadsTheSpecsOfTheTestModels) {
  const ModelProto a = parse_model_proto(slurp(data("test_spiece.model")));
  ASSERT_EQ(a.pieces.size(), 1000u);
  EXPECT_EQ(a.pieces[0].text, "<pad>");
  EXPECT_EQ(a.pieces[0].type, PieceType::kControl);
  EXPECT_EQ(a.pieces[1].text, "</s>");
  EXPECT_EQ(a.pieces[2].text, "<unk>");
  EXPECT_EQ(a.pieces[2].type, PieceType::kUnknown);
  EXPECT_EQ(std::count_if(a.pieces.begin(), a.pieces.end(), [](const Piece& p) { return p.type == PieceType::kByte; }), 256);
  EXPECT_EQ(a.pieces[3].text, "<0x00>");
  EXPECT_LT(a.pieces[600].score, 0.0f);
  EXPECT_EQ(a.trainer_spec.model_type, 1);
  EXPECT_TRUE(a.trainer_spec.byte_fallback);
  EXPECT_EQ(a.trainer_spec.pad_id, 0);
  EXPECT_EQ(a.trainer_spec.eos_id, 1);
  EXPECT_EQ(a.trainer_spec.unk_id, 2);
  EXPECT_EQ(a.trainer_spec.bos_id, -1);
  EXPECT_EQ(a.normalizer_spec.name, "nmt_nfkc");
  EXPECT_FALSE(a.normalizer_spec.precompiled_charsmap.empty());
  // Not written by the trainer: the .proto's defaults.
  EXPECT_TRUE(a.normalizer_spec.add_dummy_prefix);
  EXPECT_TRUE(a.normalizer_spec.remove_extra_whitespaces);
  EXPECT_TRUE(a.normalizer_spec.escape_whitespaces);

  const ModelProto b = parse_model_proto(slurp(data("test_spiece_nofallback.model")));
  EXPECT_FALSE(b.trainer_spec.byte_fallback);
  EXPECT_FALSE(b.normalizer_spec.add_dummy_prefix);
  EXPECT_FALSE(b.normalizer_spec.remove_extra_whitespaces);
  EXPECT_EQ(b.normalizer_spec.name, "nfkc_cf");
  EXPECT_EQ(b.trainer_spec.pad_id, 3);
  const UnigramModel bm(parse_model_proto(slurp(data("test_spiece_nofallback.model"))));
  EXPECT_EQ(bm.piece(bm.piece_to_id("<cam>")).type, PieceType::kUserDefined);
  EXPECT_EQ(bm.piece(bm.piece_to_id("NY")).type, PieceType::kUserDefined);
  EXPECT_EQ(bm.piece(bm.piece_to_id("<sep>")).type, PieceType::kControl);
  EXPECT_EQ(bm.piece_to_id("no such piece"), bm.unk_id());
  EXPECT_EQ(bm.eos_id(), 2);
  EXPECT_EQ(bm.pad_id(), 3);

  const ModelProto c = parse_model_proto(slurp(data("test_spiece_tiny.model")));
  EXPECT_EQ(c.normalizer_spec.name, "identity");
  EXPECT_TRUE(c.normalizer_spec.precompiled_charsmap.empty());
  EXPECT_FALSE(c.normalizer_spec.escape_whitespaces);
  EXPECT_TRUE(c.trainer_spec.treat_whitespace_as_suffix);
}

// ------------------------------------------------------------------------------- normaliser

// Rules of nmt_nfkc's charsmap, checked by hand against NFKC and the pieces the SentencePiece
// Python package gives (U+FB01 "fi" -> "▁f" "ine", U+2122 -> "▁T" "M", ...).
TEST(SpieceModel, CharsmapGivesTheLongestRule) {
  const CharsMap cm(parse_model_proto(slurp(data("test_spiece.model"))).normalizer_spec.precompiled_charsmap);
  const std::pair<std::string, std::pair<std::string, size_t>> cases[] = {
      {"\xEF\xAC\x81ne", {"fi", 3}},            // U+FB01 LATIN SMALL LIGATURE FI
      {"\xEF\xBC\xA1", {"A", 3}},               // U+FF21 FULLWIDTH A
      {"\xE2\x91\xA0", {"1", 3}},               // U+2460 CIRCLED DIGIT ONE
      {"\xE2\x84\xA2", {"TM", 3}},              // U+2122 TRADE MARK SIGN
      {"\xE3\x80\x80x", {" ", 3}},              // U+3000 IDEOGRAPHIC SPACE
      {"e\xCC\x81", {"\xC3\xA9", 3}},           // e + U+0301 composed to U+00E9
      {"\xC2\xBD", {"1\xE2\x81\x84" "2", 2}},   // U+00BD: 1, U+2044 FRACTION SLASH, 2
      {"\xE3\x8E\x9C", {"mm", 3}},              // U+339C SQUARE MM
      {"\t", {" ", 1}},
      {std::string("\x01", 1), {"", 1}},        // a control character: removed
      {"a", {"", 0}},                           // no rule: copied by the normaliser
      {"\xC3\x89", {"", 0}},                    // U+00C9: already NFKC
  };
  for (const auto& [in, want] : cases) {
    const auto got = cm.longest_match(in);
    EXPECT_EQ(std::string(got.first), want.first) << in;
    EXPECT_EQ(got.second, want.second) << in;
  }
  EXPECT_EQ(CharsMap().longest_match("abc").second, 0u);  // an empty charsmap: identity
}

// A charsmap of one rule, "a" -> the string at `value`, laid out by hand: the root (unit 0,
// offset 0), the edge 'a' at unit 0x61 with a leaf, whose value unit is 0x61 ^ 1.
std::string one_rule_charsmap(uint32_t value) {
  std::vector<uint32_t> units(98, 0);
  units[0x61] = 0x61u | (1u << 8) | (1u << 10);
  units[0x60] = value | (1u << 31);
  std::string blob;
  const auto put = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) blob += char(v >> (8 * i));
  };
  put(uint32_t(units.size() * 4));
  for (const uint32_t u : units) put(u);
  return blob + std::string("XY\0", 3);
}

TEST(SpieceModel, HandMadeCharsmap) {
  const CharsMap cm(one_rule_charsmap(0));
  EXPECT_EQ(cm.longest_match("ab"), (std::pair<std::string_view, size_t>("XY", 1)));
  EXPECT_EQ(cm.longest_match("ba").second, 0u);
  EXPECT_EQ(CharsMap(one_rule_charsmap(1)).longest_match("a").first, "Y");
  try {
    CharsMap bad(one_rule_charsmap(100));
    FAIL() << "a rule pointing outside the strings was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "charsmap: a rule's replacement at byte 100 is outside the 3 bytes of NUL-terminated replacements");
  }
}

// The expected texts are the pieces the SentencePiece Python package gives, joined.
TEST(SpieceModel, NormalisesWithEachModelsSettings) {
  const std::string in = "  Hello \t  World  ";
  // Dummy prefix, extra whitespace removed, spaces escaped.
  EXPECT_EQ(load(slurp(data("test_spiece.model"))).normalize(in), "\xE2\x96\x81Hello\xE2\x96\x81World");
  // Case folded, no dummy prefix, every space kept and escaped; nfkc_cf keeps the tab.
  EXPECT_EQ(load(slurp(data("test_spiece_nofallback.model"))).normalize(in),
            "\xE2\x96\x81\xE2\x96\x81hello\xE2\x96\x81\t\xE2\x96\x81\xE2\x96\x81world\xE2\x96\x81\xE2\x96\x81");
  // Identity (a tab is not a space), whitespace as a suffix, not escaped.
  EXPECT_EQ(load(slurp(data("test_spiece_tiny.model"))).normalize(in), "Hello \t World ");
  EXPECT_EQ(load(slurp(data("test_spiece.model"))).normalize(" \t\xE3\x80\x80 "), "");
}

// Ids of the SentencePiece 0.1.97 Python package for byte strings that are not UTF-8: each
// malformed byte is U+FFFD, then byte pieces (fallback) or one <unk> per run (no fallback).
TEST(SpieceModel, MalformedUtf8IsReplacedAsSentencePieceDoes) {
  const std::string inputs[] = {"a\xFF" "b", "\xE2\x82", "x\xC0\xAFy", "\xED\xA0\x80z"};
  const std::vector<std::vector<int32_t>> want[] = {
      {{269, 242, 194, 192, 343}, {259, 242, 194, 192, 242, 194, 192}, {259, 462, 242, 194, 192, 242, 194, 192, 271},
       {259, 242, 194, 192, 242, 194, 192, 242, 194, 192, 674}},
      {{11, 0, 35}, {0}, {190, 0, 28}, {0, 239}},
      {{10, 2, 43, 2}, {2}, {198, 2, 23, 2}, {2, 88, 2}},
  };
  const char* models[] = {"test_spiece.model", "test_spiece_nofallback.model", "test_spiece_tiny.model"};
  for (int m = 0; m < 3; ++m) {
    const UnigramModel model = load(slurp(data(models[m])));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(model.encode(inputs[i]), want[m][size_t(i)]) << models[m] << " input " << i;
  }
}

// ---------------------------------------------------------------------------------- encoder

TEST(SpieceModel, TiesGoToThePathFoundFirstAndUnknownRunsMerge) {
  const UnigramModel m = load(hand_model());
  EXPECT_EQ(m.eos_id(), -1);  // no </s> piece
  EXPECT_EQ(m.pad_id(), -1);
  // "▁ab▁b": ▁ + ab and ▁a + b both score -4.5; the one reaching "b" first (▁ + ab) is kept.
  EXPECT_EQ(m.encode("ab b"), (std::vector<int32_t>{1, 4, 1, 3}));
  // x, y, z are unknown: one <unk> for the run, as there is no byte fallback.
  EXPECT_EQ(m.encode("xyz"), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(m.encode("axyzb"), (std::vector<int32_t>{5, 0, 3}));
  EXPECT_EQ(m.encode("   "), std::vector<int32_t>{});
}

TEST(SpieceModel, UserDefinedPiecesAreMatchedWhole) {
  // A user-defined piece scores len * max_score - 0.1 (max_score is FLT_MIN when every score is
  // negative), so "<X>" wins over its characters as unknowns despite its own score of -50.
  const UnigramModel m = load(hand_model(piece("<X>", -50, PieceType::kUserDefined) + piece("x", -1)));
  EXPECT_EQ(m.encode("x<X>x"), (std::vector<int32_t>{1, 7, 6, 7}));
}

TEST(SpieceModel, UnknownFieldsAreSkipped) {
  const std::string plain = hand_model();
  const std::string unknown = field_varint(99, 7) + field_bytes(100, "whatever") + varint(101 << 3 | 1) + std::string(8, '\x01') +
                              varint(102 << 3 | 5) + std::string(4, '\x02');
  const std::string extended = append_to_field(append_to_field(plain, 2, unknown), 3, unknown) + unknown + field_bytes(5, "x");
  EXPECT_EQ(load(extended).encode("ab b xyz"), load(plain).encode("ab b xyz"));
}

// --------------------------------------------------------------------------- damaged files

TEST(SpieceModel, EveryTruncationOfASmallModelIsAClearError) {
  const std::string model = slurp(data("test_spiece_tiny.model"));
  ASSERT_GT(model.size(), 1000u);
  ASSERT_EQ(load_error(model), "");
  for (size_t n = 0; n < model.size(); ++n) {
    const std::string e = load_error(model.substr(0, n));
    ASSERT_NE(e, "") << "a model cut to " << n << " bytes loaded";
  }
  // Cut inside the first piece: the field and the lengths are named.
  const size_t first = uint8_t(model[1]);
  ASSERT_LT(first, 128u);
  EXPECT_EQ(load_error(model.substr(0, 2 + first / 2)), "model: field 1 at byte 0 is " + std::to_string(first) + " bytes long but only " +
                                                            std::to_string(first / 2) + " remain in the file (truncated?)");
  // Cut between pieces: no specs.
  EXPECT_EQ(load_error(""), "no trainer_spec (field 2), which the SentencePiece trainer always writes");

  // Through the tokenizer: the file is named.
  test::TempDir dir;
  const std::string p = (dir.path / "cut.model").string();
  std::ofstream(p, std::ios::binary) << model.substr(0, model.size() - 1);
  try {
    UmT5Tokenizer::load(p);
    FAIL() << "loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("tokenizer model '" + p + "' is not a SentencePiece model (model: field 3 at byte ", 0), 0u)
        << e.what();
  }
}

// A flipped byte may still be a valid model (a score, a letter of a piece): then it must encode
// without fault; otherwise the error says what is wrong.
TEST(SpieceModel, FlippedBytesLoadOrFailCleanly) {
  const std::string model = slurp(data("test_spiece_tiny.model"));
  int refused = 0;
  for (size_t i = 0; i < model.size(); ++i)
    for (const uint8_t mask : {0x01, 0x80}) {
      std::string bad = model;
      bad[i] = char(uint8_t(bad[i]) ^ mask);
      try {
        const UnigramModel m = load(bad);
        for (const int32_t id : m.encode("a cat surfs, 42 \xE2\x82 \xF0\x9F\x98\x80")) ASSERT_TRUE(id >= 0 && id < m.size());
      } catch (const std::runtime_error& e) {
        ASSERT_GT(std::strlen(e.what()), 10u);
        ++refused;
      }
    }
  EXPECT_GT(refused, 100);

  // Bytes of nmt_nfkc's charsmap (its trie and its strings), every 997th.
  const std::string big = slurp(data("test_spiece.model"));
  const size_t charsmap_at = big.find("nmt_nfkc") + 8 + 4;  // after the name, the charsmap's tag and length
  for (size_t i = charsmap_at; i < big.size(); i += 997) {
    std::string bad = big;
    bad[i] = char(uint8_t(bad[i]) ^ 0x5A);
    try {
      const UnigramModel m = load(bad);
      for (const int32_t id : m.encode("Ａ ﬁne ①™ e\xCC\x81 a cat")) ASSERT_TRUE(id >= 0 && id < m.size());
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("charsmap"), std::string::npos) << e.what();
    }
  }
}

TEST(SpieceModel, OnlyUnigramModelsAreAccepted) {
  const std::string model = slurp(data("test_spiece_tiny.model"));
  EXPECT_EQ(load_error(append_to_field(model, 2, field_varint(3, 2))), "a BPE model; only unigram models (umT5's kind) are supported");
  EXPECT_EQ(load_error(append_to_field(model, 2, field_varint(3, 4))), "a char model; only unigram models (umT5's kind) are supported");
  EXPECT_EQ(load_error(append_to_field(model, 2, field_varint(3, 9))), "trainer_spec: model type 9 is not a SentencePiece one");
  EXPECT_EQ(load_error(append_to_field(model, 2, field_varint(3, 1))), "");
}

TEST(SpieceModel, BrokenPiecesAndEncodingsAreNamed) {
  const auto error_has = [](const std::string& bytes, const std::string& part) {
    const std::string e = load_error(bytes);
    EXPECT_NE(e.find(part), std::string::npos) << "error '" << e << "' lacks '" << part << "'";
  };
  error_has(hand_model(piece("a", -7)), "piece 'a' is defined twice (ids 2 and 6)");
  error_has(hand_model(piece("", -7)), "piece 6 is empty");
  error_has(hand_model(piece("<unk2>", 0, PieceType::kUnknown)), "pieces 0 and 6 are both the unknown piece");
  error_has(hand_model(piece("<0x41>", 0, PieceType::kByte)), "byte_fallback is off");
  error_has(hand_model().substr(piece("<unk>", 0, PieceType::kUnknown).size()), "no unknown piece");
  error_has(hand_model(field_bytes(1, field_varint(3, 9))), "piece 6 (byte ");
  error_has(hand_model(field_bytes(1, field_varint(3, 9))), "type 9 is not a SentencePiece piece type");
  error_has(hand_model() + varint(1 << 3 | 2) + varint(100) + "abc", "is 100 bytes long but only 3 remain");
  error_has(hand_model() + std::string(3, '\xFF'), "cut off");
  error_has(hand_model() + std::string(11, '\xFF') + "x", "varint longer than 10 bytes");
  error_has(hand_model() + varint(7 << 3 | 3), "wire type 3");
  error_has(piece("<unk>", 0, PieceType::kUnknown) + piece("a", -1) + field_bytes(2, ""), "no normalizer_spec");
  const std::string bad_charsmap[] = {"\x08", std::string("\xFF\x00\x00\x00xyz", 7), std::string("\x00\x00\x00\x00x", 5),
                                      std::string("\x03\x00\x00\x00xyzw", 8)};
  for (const std::string& cm : bad_charsmap) error_has(hand_model().substr(0, hand_model().size() - 2) + field_bytes(3, field_bytes(2, cm)), "charsmap: ");
}

}  // namespace
}  // namespace ditgen::spiece
