#include "cond/spiece_model.h"

#include <algorithm>
#include <cfloat>
#include <cstring>
#include <stdexcept>

namespace ditgen::spiece {

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

// ------------------------------------------------------------------------- protobuf wire format

// The fields of one message. Offsets in errors count from the start of the file (`base`).
class Wire {
 public:
  Wire(std::string_view bytes, size_t base, std::string where) : bytes_(bytes), base_(base), where_(std::move(where)) {}

  struct Field {
    uint32_t number = 0;
    uint32_t wire = 0;  // 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
    uint64_t varint = 0;
    uint32_t fixed32 = 0;
    std::string_view bytes;
    size_t bytes_at = 0;  // file offset of `bytes`
  };

  bool done() const { return pos_ >= bytes_.size(); }

  Field next() {
    Field f;
    const size_t at = base_ + pos_;
    const uint64_t tag = varint("field tag", at);
    f.wire = uint32_t(tag & 7);
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1FFFFFFF)
      fail(where_ + ": field number " + std::to_string(tag >> 3) + " at byte " + std::to_string(at) + " is not a valid one");
    f.number = uint32_t(tag >> 3);
    const std::string name = "field " + std::to_string(f.number) + " at byte " + std::to_string(at);
    switch (f.wire) {
      case 0:
        f.varint = varint(name.c_str(), at);
        break;
      case 1:
        take(8, name);
        break;
      case 2: {
        const uint64_t len = varint(name.c_str(), at);
        const size_t left = bytes_.size() - pos_;
        if (len > left)
          fail(where_ + ": " + name + " is " + std::to_string(len) + " bytes long but only " + std::to_string(left) + " remain" +
               (base_ == 0 ? " in the file (truncated?)" : " in its message"));
        f.bytes_at = base_ + pos_;
        f.bytes = bytes_.substr(pos_, size_t(len));
        pos_ += size_t(len);
        break;
      }
      case 5: {
        const size_t p = take(4, name);
        for (int i = 3; i >= 0; --i) f.fixed32 = (f.fixed32 << 8) | uint8_t(bytes_[p + size_t(i)]);
        break;
      }
      default:  // 3 and 4 (groups) are not in this format; 6 and 7 are undefined
        fail(where_ + ": " + name + " has wire type " + std::to_string(f.wire) + ", which a SentencePiece model does not use");
    }
    return f;
  }

 private:
  uint64_t varint(const char* what, size_t at) {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (pos_ >= bytes_.size())
        fail(where_ + ": " + what + " (from byte " + std::to_string(at) + ") is cut off by the end of " +
             (base_ == 0 ? "the file (truncated?)" : "its message"));
      const uint8_t b = uint8_t(bytes_[pos_++]);
      v |= uint64_t(b & 0x7F) << (7 * i);
      if (!(b & 0x80)) return v;
    }
    fail(where_ + ": " + what + " (from byte " + std::to_string(at) + ") has a varint longer than 10 bytes");
  }

  size_t take(size_t n, const std::string& name) {
    if (bytes_.size() - pos_ < n)
      fail(where_ + ": " + name + " needs " + std::to_string(n) + " bytes, " + std::to_string(bytes_.size() - pos_) + " remain");
    const size_t p = pos_;
    pos_ += n;
    return p;
  }

  std::string_view bytes_;
  size_t base_ = 0, pos_ = 0;
  std::string where_;
};

// A known field with an unexpected wire type is an unknown field to protobuf: skipped.
bool is(const Wire::Field& f, uint32_t number, uint32_t wire) { return f.number == number && f.wire == wire; }

int32_t as_int32(uint64_t v) { return int32_t(uint32_t(v)); }  // int32 fields: the low 32 bits

float as_float(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

Piece parse_piece(const Wire::Field& field, size_t index) {
  Piece p;
  const std::string where = "piece " + std::to_string(index) + " (byte " + std::to_string(field.bytes_at) + ")";
  Wire w(field.bytes, field.bytes_at, where);
  while (!w.done()) {
    const auto f = w.next();
    if (is(f, 1, 2)) {
      p.text.assign(f.bytes);
    } else if (is(f, 2, 5)) {
      p.score = as_float(f.fixed32);
    } else if (is(f, 3, 0)) {
      if (f.varint < 1 || f.varint > 6) fail(where + ": type " + std::to_string(f.varint) + " is not a SentencePiece piece type");
      p.type = PieceType(f.varint);
    }
  }
  return p;
}

void parse_trainer_spec(const Wire::Field& field, TrainerSpec& t) {
  Wire w(field.bytes, field.bytes_at, "trainer_spec (byte " + std::to_string(field.bytes_at) + ")");
  while (!w.done()) {
    const auto f = w.next();
    if (f.wire == 0) {
      switch (f.number) {
        case 3:
          if (f.varint < 1 || f.varint > 4) fail("trainer_spec: model type " + std::to_string(f.varint) + " is not a SentencePiece one");
          t.model_type = int32_t(f.varint);
          break;
        case 24: t.treat_whitespace_as_suffix = f.varint != 0; break;
        case 35: t.byte_fallback = f.varint != 0; break;
        case 40: t.unk_id = as_int32(f.varint); break;
        case 41: t.bos_id = as_int32(f.varint); break;
        case 42: t.eos_id = as_int32(f.varint); break;
        case 43: t.pad_id = as_int32(f.varint); break;
        default: break;
      }
    } else if (f.wire == 2) {
      switch (f.number) {
        case 44: t.unk_surface.assign(f.bytes); break;
        case 45: t.unk_piece.assign(f.bytes); break;
        case 46: t.bos_piece.assign(f.bytes); break;
        case 47: t.eos_piece.assign(f.bytes); break;
        case 48: t.pad_piece.assign(f.bytes); break;
        default: break;
      }
    }
  }
}

void parse_normalizer_spec(const Wire::Field& field, NormalizerSpec& n) {
  Wire w(field.bytes, field.bytes_at, "normalizer_spec (byte " + std::to_string(field.bytes_at) + ")");
  while (!w.done()) {
    const auto f = w.next();
    if (is(f, 1, 2)) n.name.assign(f.bytes);
    else if (is(f, 2, 2)) n.precompiled_charsmap.assign(f.bytes);
    else if (is(f, 3, 0)) n.add_dummy_prefix = f.varint != 0;
    else if (is(f, 4, 0)) n.remove_extra_whitespaces = f.varint != 0;
    else if (is(f, 5, 0)) n.escape_whitespaces = f.varint != 0;
  }
}

uint32_t le32(const char* p) {
  return uint32_t(uint8_t(p[0])) | uint32_t(uint8_t(p[1])) << 8 | uint32_t(uint8_t(p[2])) << 16 | uint32_t(uint8_t(p[3])) << 24;
}

// Darts-clone unit fields.
bool has_leaf(uint32_t u) { return (u >> 8) & 1; }
uint32_t unit_value(uint32_t u) { return u & 0x7FFFFFFFu; }
uint32_t unit_label(uint32_t u) { return u & 0x800000FFu; }  // a leaf unit's has bit 31: never a byte
uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

// Bytes of the UTF-8 character at the start of s as SentencePiece decodes it; 0 when malformed
// (truncated, a stray continuation byte, overlong, a surrogate or above U+10FFFF).
size_t utf8_char_len(std::string_view s) {
  const auto b = [&](size_t i) { return uint8_t(s[i]); };
  const auto trail = [&](size_t i) { return (b(i) & 0xC0) == 0x80; };
  if (b(0) < 0x80) return 1;
  if ((b(0) & 0xE0) == 0xC0 && s.size() >= 2 && trail(1)) {
    const uint32_t cp = uint32_t(b(0) & 0x1F) << 6 | (b(1) & 0x3F);
    return cp >= 0x80 ? 2 : 0;
  }
  if ((b(0) & 0xF0) == 0xE0 && s.size() >= 3 && trail(1) && trail(2)) {
    const uint32_t cp = uint32_t(b(0) & 0x0F) << 12 | uint32_t(b(1) & 0x3F) << 6 | (b(2) & 0x3F);
    return cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF) ? 3 : 0;
  }
  if ((b(0) & 0xF8) == 0xF0 && s.size() >= 4 && trail(1) && trail(2) && trail(3)) {
    const uint32_t cp = uint32_t(b(0) & 0x07) << 18 | uint32_t(b(1) & 0x3F) << 12 | uint32_t(b(2) & 0x3F) << 6 | (b(3) & 0x3F);
    return cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
  }
  return 0;
}

// The encoder steps by the length the lead byte announces, as SentencePiece does.
size_t lead_byte_len(uint8_t b) { return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

const char* type_name(int32_t model_type) {
  switch (model_type) {
    case 2: return "BPE";
    case 3: return "word";
    case 4: return "char";
    default: return "unigram";
  }
}

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space

}  // namespace

ModelProto parse_model_proto(std::string_view bytes) {
  ModelProto m;
  Wire w(bytes, 0, "model");
  while (!w.done()) {
    const auto f = w.next();
    if (f.wire != 2) continue;
    if (f.number == 1) {
      m.pieces.push_back(parse_piece(f, m.pieces.size()));
    } else if (f.number == 2) {
      parse_trainer_spec(f, m.trainer_spec);  // a repeated message field merges into the first
      m.has_trainer_spec = true;
    } else if (f.number == 3) {
      parse_normalizer_spec(f, m.normalizer_spec);
      m.has_normalizer_spec = true;
    }  // 4 self_test_data, 5 denormalizer_spec and unknown fields: not needed to encode
  }
  return m;
}

// --------------------------------------------------------------------------------- charsmap

CharsMap::CharsMap(std::string_view blob) {
  if (blob.size() <= 4) fail("charsmap: " + std::to_string(blob.size()) + " bytes, too short for its header and trie");
  const uint32_t trie_bytes = le32(blob.data());
  if (trie_bytes > blob.size() - 4)
    fail("charsmap: its trie of " + std::to_string(trie_bytes) + " bytes runs past the end of the " + std::to_string(blob.size()) +
         "-byte charsmap");
  if (trie_bytes == 0 || trie_bytes % 4 != 0)
    fail("charsmap: a trie of " + std::to_string(trie_bytes) + " bytes is not a whole, non-zero number of 4-byte units");
  units_.resize(trie_bytes / 4);
  for (size_t i = 0; i < units_.size(); ++i) units_[i] = le32(blob.data() + 4 + 4 * i);
  strings_.assign(blob.substr(4 + size_t(trie_bytes)));

  // Every leaf a lookup can reach must name a NUL-terminated replacement; edges that fall outside
  // the array are left alone (a lookup treats them as no match).
  const size_t n = units_.size();
  std::vector<uint8_t> seen(n, 0);
  std::vector<uint32_t> todo{0};
  seen[0] = 1;
  while (!todo.empty()) {
    const uint32_t node = todo.back();
    todo.pop_back();
    const uint32_t base = node ^ unit_offset(units_[node]);
    for (uint32_t c = 0; c < 256; ++c) {
      const uint32_t child = base ^ c;
      if (child >= n || unit_label(units_[child]) != c) continue;
      if (has_leaf(units_[child])) {
        const uint32_t leaf = child ^ unit_offset(units_[child]);
        if (leaf >= n) fail("charsmap: a rule's leaf (unit " + std::to_string(leaf) + ") is outside the " + std::to_string(n) + "-unit trie");
        const uint32_t v = unit_value(units_[leaf]);
        if (v >= strings_.size() || strings_.find('\0', v) == std::string::npos)
          fail("charsmap: a rule's replacement at byte " + std::to_string(v) + " is outside the " + std::to_string(strings_.size()) +
               " bytes of NUL-terminated replacements");
      }
      if (!seen[child]) {
        seen[child] = 1;
        todo.push_back(child);
      }
    }
  }
}

std::pair<std::string_view, size_t> CharsMap::longest_match(std::string_view s) const {
  if (units_.empty()) return {{}, 0};
  // SentencePiece looks at the first 32 rules that match a prefix (its trie never has more).
  constexpr int kMaxResults = 32;
  const size_t n = units_.size();
  uint32_t pos = unit_offset(units_[0]);
  size_t best_len = 0;
  uint32_t best_value = 0;
  int results = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const uint8_t c = uint8_t(s[i]);
    pos ^= c;
    if (pos >= n) break;
    const uint32_t u = units_[pos];
    if (unit_label(u) != c) break;
    pos ^= unit_offset(u);
    if (has_leaf(u)) {
      if (pos >= n) break;
      if (++results <= kMaxResults) {
        best_len = i + 1;
        best_value = unit_value(units_[pos]);
      }
    }
  }
  if (best_len == 0) return {{}, 0};
  return {std::string_view(strings_.c_str() + best_value), best_len};
}

// --------------------------------------------------------------------------------- byte trie

void ByteTrie::build(std::vector<std::pair<std::string_view, int32_t>> keys) {
  std::sort(keys.begin(), keys.end());
  nodes_.assign(1, Node{});
  labels_.assign(1, 0);
  struct Job {
    uint32_t node, lo, hi, depth;
  };
  // Breadth first, so that each node's children are allocated together.
  std::vector<Job> jobs{{0, 0, uint32_t(keys.size()), 0}};
  for (size_t q = 0; q < jobs.size(); ++q) {
    auto [node, lo, hi, depth] = jobs[q];
    if (lo < hi && keys[lo].first.size() == depth) nodes_[node].value = keys[lo++].second;
    nodes_[node].first = uint32_t(nodes_.size());
    uint32_t count = 0;
    while (lo < hi) {
      const uint8_t c = uint8_t(keys[lo].first[depth]);
      uint32_t end = lo;
      while (end < hi && uint8_t(keys[end].first[depth]) == c) ++end;
      nodes_.push_back(Node{});
      labels_.push_back(c);
      jobs.push_back({uint32_t(nodes_.size() - 1), lo, end, depth + 1});
      ++count;
      lo = end;
    }
    nodes_[node].count = count;
  }
}

int32_t ByteTrie::child(int32_t node, uint8_t byte) const {
  const Node& nd = nodes_[size_t(node)];
  const auto b = labels_.begin() + nd.first, e = b + nd.count;
  const auto it = std::lower_bound(b, e, byte);
  return it == e || *it != byte ? -1 : int32_t(it - labels_.begin());
}

size_t ByteTrie::longest_prefix(std::string_view s) const {
  if (nodes_.empty()) return 0;
  int32_t node = kRoot;
  size_t best = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    node = child(node, uint8_t(s[i]));
    if (node < 0) break;
    if (value(node) >= 0) best = i + 1;
  }
  return best;
}

// ----------------------------------------------------------------------------- unigram model

UnigramModel::UnigramModel(ModelProto proto)
    : pieces_(std::move(proto.pieces)), trainer_(std::move(proto.trainer_spec)), normalizer_(std::move(proto.normalizer_spec)) {
  if (!proto.has_trainer_spec) fail("no trainer_spec (field 2), which the SentencePiece trainer always writes");
  if (!proto.has_normalizer_spec) fail("no normalizer_spec (field 3), which the SentencePiece trainer always writes");
  if (trainer_.model_type != 1)
    fail(std::string("a ") + type_name(trainer_.model_type) + " model; only unigram models (umT5's kind) are supported");
  if (pieces_.empty()) fail("no pieces");

  std::vector<std::pair<std::string_view, int32_t>> trie_keys, user_keys;
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const Piece& p = pieces_[i];
    const int32_t id = int32_t(i);
    if (p.text.empty()) fail("piece " + std::to_string(i) + " is empty");
    switch (p.type) {
      case PieceType::kUnknown:
        if (unk_id_ >= 0) fail("pieces " + std::to_string(unk_id_) + " and " + std::to_string(i) + " are both the unknown piece");
        unk_id_ = id;
        reserved_sorted_.emplace_back(p.text, id);
        break;
      case PieceType::kByte:
        if (!trainer_.byte_fallback) fail("piece " + std::to_string(i) + " '" + p.text + "' is a byte piece but byte_fallback is off");
        [[fallthrough]];
      case PieceType::kControl:
        reserved_sorted_.emplace_back(p.text, id);
        break;
      case PieceType::kNormal:
      case PieceType::kUserDefined:
        trie_keys.emplace_back(p.text, id);
        if (p.type == PieceType::kUserDefined) user_keys.emplace_back(p.text, id);
        [[fallthrough]];
      case PieceType::kUnused:
        others_sorted_.emplace_back(p.text, id);
        break;
    }
  }
  if (unk_id_ < 0) fail("no unknown piece");
  if (others_sorted_.empty()) fail("no pieces but control, unknown and byte ones");
  for (auto* v : {&reserved_sorted_, &others_sorted_}) {
    std::sort(v->begin(), v->end());
    for (size_t i = 1; i < v->size(); ++i)
      if ((*v)[i].first == (*v)[i - 1].first)
        fail("piece '" + std::string((*v)[i].first) + "' is defined twice (ids " + std::to_string((*v)[i - 1].second) + " and " +
             std::to_string((*v)[i].second) + ")");
  }

  // As SentencePiece: over normal pieces only, from FLT_MAX and FLT_MIN (the smallest positive
  // float, so an all-negative vocabulary keeps max_score_ = FLT_MIN).
  min_score_ = FLT_MAX;
  max_score_ = FLT_MIN;
  for (const Piece& p : pieces_)
    if (p.type == PieceType::kNormal) {
      min_score_ = std::min(min_score_, p.score);
      max_score_ = std::max(max_score_, p.score);
    }
  pieces_trie_.build(std::move(trie_keys));
  user_defined_.build(std::move(user_keys));
  if (!normalizer_.precompiled_charsmap.empty()) charsmap_ = CharsMap(normalizer_.precompiled_charsmap);

  static const char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
    byte_ids_[b] = piece_to_id(std::string_view(name, sizeof(name)));
  }
  // SentencePiece reads these names as C strings and accepts only control pieces.
  const auto control_id = [&](const std::string& name) {
    const int id = piece_to_id(std::string_view(name.c_str()));
    return pieces_[size_t(id)].type == PieceType::kControl ? id : -1;
  };
  eos_id_ = control_id(trainer_.eos_piece);
  pad_id_ = control_id(trainer_.pad_piece);
}

int UnigramModel::piece_to_id(std::string_view piece) const {
  for (const auto* v : {&reserved_sorted_, &others_sorted_}) {
    const auto it = std::lower_bound(v->begin(), v->end(), piece, [](const auto& e, std::string_view k) { return e.first < k; });
    if (it != v->end() && it->first == piece) return it->second;
  }
  return unk_id_;
}

std::pair<std::string_view, size_t> UnigramModel::normalize_prefix(std::string_view s) const {
  // User-defined pieces pass through unnormalised, longest first.
  if (const size_t n = user_defined_.longest_prefix(s)) return {s.substr(0, n), n};
  if (const auto m = charsmap_.longest_match(s); m.second > 0) return m;
  if (const size_t n = utf8_char_len(s)) return {s.substr(0, n), n};
  return {"\xEF\xBF\xBD", 1};  // a malformed byte becomes U+FFFD, one byte consumed
}

std::string UnigramModel::normalize(std::string_view text) const {
  std::string out;
  const bool trim = normalizer_.remove_extra_whitespaces, escape = normalizer_.escape_whitespaces;
  if (trim)
    while (!text.empty()) {
      const auto [norm, len] = normalize_prefix(text);
      if (norm != " ") break;
      text.remove_prefix(len);
    }
  if (text.empty()) return out;

  const std::string_view space = escape ? kSpaceSymbol : std::string_view(" ");
  const bool dummy = normalizer_.add_dummy_prefix, suffix = trainer_.treat_whitespace_as_suffix;
  if (dummy && !suffix) out += space;
  bool prev_space = trim;
  while (!text.empty()) {
    const auto [norm, len] = normalize_prefix(text);
    std::string_view piece = norm;
    while (prev_space && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
    if (!piece.empty()) {
      for (const char c : piece) {
        if (escape && c == ' ') out += kSpaceSymbol;
        else out += c;
      }
      prev_space = piece.back() == ' ';
    }
    text.remove_prefix(len);
    if (!trim) prev_space = false;
  }
  if (trim)
    while (out.size() >= space.size() && std::string_view(out).substr(out.size() - space.size()) == space) out.resize(out.size() - space.size());
  if (dummy && suffix) out += space;
  return out;
}

std::vector<int32_t> UnigramModel::encode(std::string_view text) const {
  const std::string s = normalize(text);
  std::vector<int32_t> ids;
  if (s.empty()) return ids;

  // Best path ending at each byte position, filled left to right one character at a time. The
  // arithmetic and the comparisons are SentencePiece's, float and double where it has them, so
  // that ties and near-ties resolve the same way.
  struct Best {
    int32_t id = -1;
    float score = 0;
    int64_t start = -1;
  };
  const size_t n = s.size();
  std::vector<Best> best(n + 1);
  const float unk_score = min_score_ - 10.0f;
  for (size_t start = 0; start < n;) {
    const float here = best[start].score;
    const size_t char_len = std::min(lead_byte_len(uint8_t(s[start])), n - start);
    bool has_single = false;
    int32_t node = ByteTrie::kRoot;
    for (size_t end = start; end < n;) {
      node = pieces_trie_.child(node, uint8_t(s[end++]));
      if (node < 0) break;
      const int32_t id = pieces_trie_.value(node);
      if (id < 0) continue;
      const size_t len = end - start;
      // A user-defined piece always wins over the pieces it overlaps.
      const double score = pieces_[size_t(id)].type == PieceType::kUserDefined ? double(float(len) * max_score_) - 0.1
                                                                               : double(pieces_[size_t(id)].score);
      const double candidate = score + double(here);
      Best& b = best[end];
      if (b.start == -1 || candidate > double(b.score)) b = {id, float(candidate), int64_t(start)};
      if (len == char_len) has_single = true;
    }
    if (!has_single) {
      const float candidate = unk_score + here;
      Best& b = best[start + char_len];
      if (b.start == -1 || candidate > b.score) b = {unk_id_, candidate, int64_t(start)};
    }
    start += char_len;
  }

  struct Span {
    size_t start, end;
    int32_t id;
  };
  std::vector<Span> path;
  for (size_t end = n; end > 0;) {
    const Best& b = best[end];
    if (b.start < 0) throw std::logic_error("spiece: unreachable position " + std::to_string(end) + " in the best path");
    path.push_back({size_t(b.start), end, b.id});
    end = size_t(b.start);
  }
  std::reverse(path.begin(), path.end());

  bool prev_unk = false;
  for (const Span& p : path) {
    const bool unk = pieces_[size_t(p.id)].type == PieceType::kUnknown;
    if (unk && trainer_.byte_fallback) {
      for (size_t i = p.start; i < p.end; ++i) ids.push_back(byte_ids_[uint8_t(s[i])]);
    } else if (!(unk && prev_unk)) {  // a run of unknown characters is one unknown piece
      ids.push_back(p.id);
    }
    prev_unk = unk;
  }
  return ids;
}

}  // namespace ditgen::spiece
