#include "pipeline/prompt.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "cond/umt5.h"
#include "cond/umt5_tokenizer.h"
#include "dit/gemm_bf16.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"

namespace ditgen::pipeline {

namespace {
namespace fs = std::filesystem;

constexpr const char* kEncoderName = "models_t5_umt5-xxl-enc-bf16";

// FNV-1a, 64 bits: names cache files; the cache checks the full identity it stores, so a
// collision costs a re-encode, never wrong states.
uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::string hex(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

// A file's identity without reading all of it (the encoder is 11.4 GB): its size and a hash of
// its first 4 MiB (a safetensors file's header: every name, dtype, shape and offset) and last
// 1 MiB. `whole` hashes every byte (the tokenizer model, 4 MB).
std::string fingerprint(const std::string& path, bool whole) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  const uint64_t size = fs::file_size(path);
  uint64_t h = fnv1a(&size, sizeof size);
  std::vector<char> buf(1 << 20);
  const auto hash_range = [&](uint64_t from, uint64_t bytes) {
    in.seekg(std::streamoff(from));
    while (bytes > 0) {
      const size_t n = size_t(std::min<uint64_t>(bytes, buf.size()));
      if (!in.read(buf.data(), std::streamsize(n))) throw std::runtime_error("cannot read '" + path + "'");
      h = fnv1a(buf.data(), n, h);
      bytes -= n;
    }
  };
  if (whole || size <= (5u << 20)) {
    hash_range(0, size);
  } else {
    hash_range(0, 4u << 20);
    hash_range(size - (1u << 20), 1u << 20);
  }
  return std::to_string(size) + ":" + hex(h);
}

using Identity = std::map<std::string, std::string>;

std::string cache_path(const std::string& dir, const Identity& id) {
  uint64_t h = fnv1a("", 0);
  for (const auto& [k, v] : id) {
    h = fnv1a(k.data(), k.size() + 1, h);  // with the terminating NUL as a separator
    h = fnv1a(v.data(), v.size() + 1, h);
  }
  return (fs::path(dir) / (hex(h) + ".safetensors")).string();
}

// The cached states of `id`, or false (no file, another identity, a damaged file: re-encode).
bool read_cache(const std::string& path, const Identity& id, EncodedPrompts& e) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  try {
    const io::SafetensorsFile f = io::SafetensorsFile::open(path);
    for (const auto& [k, v] : id) {
      const auto it = f.metadata().find(k);
      if (it == f.metadata().end() || it->second != v) return false;
    }
    for (auto [name, dst] : {std::pair{"prompt", &e.prompt}, std::pair{"negative_prompt", &e.negative_prompt}}) {
      if (!f.has(name) || f.tensor(name).shape.size() != 2) return false;
      dst->reset(f.tensor(name).shape, DType::F32);
      f.read_float(name, dst->data());
    }
  } catch (const std::exception&) {
    return false;
  }
  e.prompt_tokens = e.prompt.shape()[0];
  e.negative_tokens = e.negative_prompt.shape()[0];
  return true;
}

std::vector<io::SafetensorsWriteTensor> context_tensors(const EncodedPrompts& e) {
  return {{"prompt", DType::F32, e.prompt.shape(), e.prompt.data(), nullptr},
          {"negative_prompt", DType::F32, e.negative_prompt.shape(), e.negative_prompt.data(), nullptr}};
}
}  // namespace

const std::string& wan_default_negative_prompt() {
  static const std::string s =
      "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
      "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
      "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";
  return s;
}

TextEncoderFiles locate_text_encoder(const std::string& model) {
  std::error_code ec;
  const fs::path p(model);
  const fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  TextEncoderFiles files;
  const fs::path st = dir / (std::string(kEncoderName) + ".safetensors");
  if (fs::is_regular_file(st, ec)) {
    files.encoder = st.string();
  } else if (fs::is_regular_file(dir / (std::string(kEncoderName) + ".pth"), ec)) {
    throw std::runtime_error("model folder '" + dir.string() + "' has " + kEncoderName + ".pth but no " + kEncoderName +
                             ".safetensors: convert it with tools/wan/convert_pth.py (the engine reads no pickles)");
  } else if (fs::is_directory(dir / "text_encoder", ec) || fs::is_directory(dir.parent_path() / "text_encoder", ec)) {
    throw std::runtime_error("model folder '" + dir.string() + "' has a diffusers-format text_encoder/, whose tensor "
                             "names are not read: use the release's " + kEncoderName + ".safetensors and google/umt5-xxl/");
  } else {
    throw std::runtime_error("model folder '" + dir.string() + "' has no umT5 text encoder: expected " + kEncoderName +
                             ".safetensors (a prompt needs it; --context FILE gives the states instead)");
  }
  files.tokenizer = UmT5Tokenizer::model_path_in(dir.string());
  return files;
}

std::string default_prompt_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "ditgen" / "prompts").string();
  if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".cache" / "ditgen" / "prompts").string();
  return "";
}

EncodedPrompts encode_prompts(const PromptOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const DType dtype = o.dtype.value_or(gemm::bf16_gemm_available() ? DType::BF16 : DType::F32);
  if (dtype == DType::BF16 && !gemm::bf16_gemm_available())
    throw std::invalid_argument("--dtype bf16 needs a CPU with AVX-512 BF16, which this one lacks: use --dtype float32");
  const TextEncoderFiles files = locate_text_encoder(o.model);
  const std::string negative = o.negative_prompt.value_or(wan_default_negative_prompt());
  EncodedPrompts e;
  e.dtype = dtype == DType::BF16 ? "bf16" : "float32";
  const UmT5Tokenizer tok = UmT5Tokenizer::load(files.tokenizer);
  // Tokenize first: a prompt that is not UTF-8 is refused before anything is read.
  const TokenizedPrompt p = tok.encode(o.prompt), n = tok.encode(negative);
  for (const auto& [what, t] : {std::pair{"prompt", &p}, std::pair{"negative prompt", &n}})
    if (!t->warning().empty()) e.warnings.push_back(std::string(what) + ": " + t->warning());

  const Identity id = {{"ditgen_prompt_cache", "1"},          {"prompt", o.prompt},
                       {"negative_prompt", negative},         {"encoder", fingerprint(files.encoder, false)},
                       {"tokenizer", fingerprint(files.tokenizer, true)}, {"dtype", e.dtype}};
  if (!o.cache_dir.empty()) {
    e.cache_file = cache_path(o.cache_dir, id);
    if (read_cache(e.cache_file, id, e)) {
      e.from_cache = true;
      e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      return e;
    }
  }
  {
    // Scoped: the encoder's mapping is gone before the caller reads the DiT.
    const cond::UmT5Encoder enc = cond::UmT5Encoder::load(files.encoder, dtype);
    if (tok.vocab_size() > enc.config().vocab)
      throw std::runtime_error("tokenizer '" + files.tokenizer + "' has " + std::to_string(tok.vocab_size()) +
                               " pieces but the encoder '" + files.encoder + "' embeds " +
                               std::to_string(enc.config().vocab) + " tokens: they are not a pair");
    e.prompt = enc.encode(p.ids);
    e.negative_prompt = enc.encode(n.ids);
  }
  e.prompt_tokens = int64_t(p.ids.size());
  e.negative_tokens = int64_t(n.ids.size());
  if (!e.cache_file.empty()) {
    try {
      fs::create_directories(o.cache_dir);
      io::write_safetensors(e.cache_file, context_tensors(e), id, true);
    } catch (const std::exception& ex) {
      e.warnings.push_back(std::string("prompt cache not written: ") + ex.what());
      e.cache_file.clear();
    }
  }
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return e;
}

void write_context_file(const std::string& path, const EncodedPrompts& e, bool overwrite) {
  auto out = std::make_unique<io::AtomicOutput>(path, overwrite);
  io::write_safetensors(out->temp_path(), context_tensors(e), {{"layout", "[tokens, width]"}}, true);
  io::publish(std::move(out), nullptr);
}

}  // namespace ditgen::pipeline
