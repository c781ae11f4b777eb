// Writes the seed corpora of the fuzz harnesses with the project's own writers:
//   fuzz_seeds DIR  ->  DIR/weights/*.h5, DIR/paro_calib/*.json, DIR/attn_spec/*.txt,
//                       DIR/cli_values/*.txt, DIR/safetensors/*.safetensors
// The committed seeds under tests/fuzz/corpus/ were made with it (all files well under 50 KB).
// Safetensors seeds: files from io::write_safetensors, the same as header-NUL-data (the harness's
// second reading), and a few such headers written out here by hand.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "attention/methods/paro.h"
#include "attention/methods/sta.h"
#include "attention/mask/reorder.h"
#include "dit/weights.h"
#include "io/safetensors.h"
#include "io/weights_h5.h"

namespace fs = std::filesystem;
using namespace ditgen;

namespace {

DiTConfig tiny(int layers) {
  DiTConfig c;
  c.in_channels = 1;
  c.patch_t = 1, c.patch_h = 2, c.patch_w = 2;
  c.dim = 6, c.ffn_dim = 4, c.num_heads = 1, c.num_layers = layers;
  c.freq_dim = 2, c.ctx_len = 1, c.ctx_dim = 2, c.num_classes = 2;
  c.sample_steps = 1, c.frame_height = 4, c.frame_width = 4;
  return c;
}

attn::ParoCalibration calibration(int tp, int hp, int wp, int block, int heads, int layers, bool all_plans) {
  attn::ParoCalibration c;
  c.tp = tp, c.hp = hp, c.wp = wp, c.block = block, c.heads = heads, c.layers = layers, c.mass = 0.9;
  const int nb = int((int64_t(tp) * hp * wp + block - 1) / block);
  for (int l = 0; l < layers; ++l)
    for (int h = 0; h < heads; ++h) {
      if (!all_plans && (l + h) % 2) continue;
      attn::ParoHeadPlan p;
      p.layer = l, p.head = h, p.order = attn::axis_orders()[size_t(l * heads + h) % 6];
      p.keep.assign(size_t(nb), std::vector<char>(size_t(nb), 0));
      int kept = 0;
      for (int a = 0; a < nb; ++a)
        for (int b = 0; b < nb; ++b)
          if (a == b || (a + b + h) % 3 == 0) p.keep[size_t(a)][size_t(b)] = 1, ++kept;
      p.density = double(kept) / (double(nb) * nb);
      c.plans.push_back(p);
    }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seeds DIR\n";
    return 2;
  }
  const fs::path dir = argv[1];
  for (const char* sub : {"weights", "paro_calib", "attn_spec", "cli_values", "safetensors"}) fs::create_directories(dir / sub);

  const std::pair<const char*, io::DiskType> types[] = {
      {"f32", io::DiskType::Float32}, {"f16", io::DiskType::Float16}, {"bf16", io::DiskType::BFloat16}};
  for (auto [name, type] : types) {
    const DiTConfig c = tiny(1);
    DiTWeights w = DiTWeights::random(c, 7);
    io::save_weights((dir / "weights" / (std::string("tiny_") + name + ".h5")).string(), c, w, type, true);
  }
  {
    const DiTConfig c = tiny(2);
    DiTWeights w = DiTWeights::random(c, 8);
    io::save_weights((dir / "weights" / "tiny_2layers_f16.h5").string(), c, w, io::DiskType::Float16, true);
  }

  calibration(1, 4, 4, 4, 2, 2, true).write((dir / "paro_calib" / "grid1x4x4_block4.json").string());
  calibration(3, 4, 6, 16, 2, 2, false).write((dir / "paro_calib" / "grid3x4x6_block16_partial.json").string());
  calibration(2, 2, 3, 5, 2, 1, true).write((dir / "paro_calib" / "grid2x2x3_block5.json").string());
  {
    attn::StaCalibration c;  // window search results share the harness
    c.tp = 2, c.hp = 4, c.wp = 4, c.block = 8, c.steps = 2, c.layers = 2, c.heads = 2, c.tile = {1, 2, 2};
    c.windows = {{1, 2, 1}, {2, 1, 1}};
    c.choice = {0, 1, 1, 0, 0, 0, 1, 1};
    c.error.assign(16, 0.5);
    c.write((dir / "paro_calib" / "sta_grid2x4x4_tile1x2x2.json").string());
  }

  const char* specs[] = {
      "dense",
      "dense:block=16",
      "radial:decay=0.5,sink=0,shrink=1,block=8",
      "radial3d:decay=1,sink=1,layout=tile,tile=2x2x2",
      "window:window=3x3x3,tile=2x2x2,summary=1,dense_steps=1",
      "window:window=1x3x5,layout=tile,tile=1x2x2,sink=0",
      "svg:density=0.3,rows=8,sample_limit=100,dense_layers=1",
      "topp:p=0.9,sink=1,block=4,layout=transpose",
      "topp:p=0.5,dense_steps=auto,auto_tol=0.1,auto_rows=4",
      "radial:dense_steps=0.5,dense_layers=1,layout=hwt,block=7",
      "paro:calib=c.json,block=64",
      "radial3d:isa=avx512bf16,block=8,dense_steps=0.4,refresh=4",
      "dense:isa=portable",
  };
  int i = 0;
  for (const char* s : specs) std::ofstream(dir / "attn_spec" / ("spec" + std::to_string(i++) + ".txt"), std::ios::binary) << s;
  // Command-line values (harness_cli.h): the first byte picks the parser, '0' --labels and
  // '1' --steps-probed (parse_int_list), '2' score-digits --labels, '3' --isa, '4' --solver,
  // '5' --gemm, '6' bench --density; valid and invalid values for each.
  const char* values[] = {
      "03,7", "00", "0-1,2147483647", "0 5,+6", "0", "03,,7", "03,x", "02147483648", "03,7,",
      "10,5,10", "1-2147483648", "1 ", "11.5",
      "23,7", "20,9", "23,10", "23", "2a,b", "23,7,1", "2",
      "3auto", "3portable", "3avx2", "3avx512", "3avx512bf16", "3AVX2", "3avx512 ", "3",
      "4euler", "4unipc", "4dpm++2m", "4ddim", "4Euler", "4",
      "5auto", "5eigen", "5openblas", "5bf16", "5cublas", "5",
      "60.25", "60.1,0.5,1", "61e-3", "60", "61.0001", "6nan", "60x1p-2", "6,", "6", "60.5abc", "6inf",
  };
  i = 0;
  for (const char* s : values) std::ofstream(dir / "cli_values" / ("value" + std::to_string(i++) + ".txt"), std::ios::binary) << s;
  // safetensors files (io::write_safetensors): every dtype, a scalar, an empty tensor, metadata;
  // one of bfloat16 weights named as in Wan2.1; float16 infinities, NaN and subnormals; nothing.
  {
    const fs::path st = dir / "safetensors";
    const float f6[6] = {1.5f, -2.0f, 0.1f, 3e-40f, 65504.0f, -0.0f};
    const uint16_t h4[4] = {0x3c00, 0x7c00, 0x7e01, 0x0001};
    const float one = 1.0f;
    io::write_safetensors((st / "mixed.safetensors").string(),
                          {{"w", DType::F32, {2, 3}, f6, nullptr},
                           {"b", DType::BF16, {6}, f6, nullptr},
                           {"h", DType::F16, {4}, nullptr, h4},
                           {"s", DType::F32, {}, &one, nullptr},
                           {"e", DType::BF16, {0, 3}, nullptr, nullptr}},
                          {{"format", "pt"}});
    io::write_safetensors((st / "wan_names_bf16.safetensors").string(),
                          {{"blocks.0.self_attn.q.weight", DType::BF16, {2, 2}, f6, nullptr},
                           {"blocks.0.self_attn.norm_q.weight", DType::BF16, {2}, f6 + 4, nullptr},
                           {"patch_embedding.weight", DType::BF16, {1, 1, 1, 1, 2}, f6, nullptr}});
    io::write_safetensors((st / "f16_specials.safetensors").string(), {{"x", DType::F16, {2, 2}, nullptr, h4}});
    io::write_safetensors((st / "metadata_only.safetensors").string(), {}, {{"note", "no tensors"}, {"ünï", "cödé"}});
    io::write_safetensors((st / "empty.safetensors").string(), {});
    // The same files in the harness's second reading: header, a NUL byte, data.
    for (const char* name : {"mixed", "wan_names_bf16", "f16_specials", "metadata_only", "empty"}) {
      std::ifstream in(st / (std::string(name) + ".safetensors"), std::ios::binary);
      const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      uint64_t n = 0;
      for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[size_t(i)]);
      std::ofstream(st / (std::string(name) + ".framed"), std::ios::binary)
          << file.substr(8, n) << '\0' << file.substr(8 + n);
    }
    // Valid headers that the writer would not make, one edit away from a rule: gaps, unaligned
    // data, an unknown key, offsets out of order; rank 8; two adjacent tensors; metadata of
    // several strings; an empty tensor with huge dimensions.
    const std::pair<const char*, const char*> by_hand[] = {
        {"loose", R"({"a":{"shape":[3],"dtype":"F32","data_offsets":[7,19],"extra":"x"},"e":{"dtype":"BF16","shape":[0,5],)"
                  R"("data_offsets":[7,7]},"s":{"dtype":"F32","shape":[],"data_offsets":[20,24]},)"
                  R"("b":{"dtype":"F16","shape":[1,2],"data_offsets":[3,7]}})"},
        {"rank8", R"({"r":{"dtype":"BF16","shape":[1,1,1,1,1,1,1,2],"data_offsets":[0,4]}})"},
        {"adjacent", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[4],"data_offsets":[8,16]}})"},
        {"metadata", R"({"__metadata__":{"format":"pt","a\"b":"\u00e9\n","":""},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})"},
        {"huge_empty", R"({"z":{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[3,3]}})"},
    };
    for (auto [name, header] : by_hand)
      std::ofstream(st / (std::string(name) + ".framed"), std::ios::binary)
          << header << '\0' << std::string(32, '\x3f');
  }
  std::cout << "seeds written under " << dir.string() << "\n";
  return 0;
}
