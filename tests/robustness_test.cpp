// Robustness: interruption (SIGINT/SIGTERM mid-run), determinism across runs and thread
// counts, the numerical guard, and the replay of every fuzz seed and regression input.
#include <gtest/gtest.h>
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "pipeline/generate.h"
#include "pipeline/isolated_loader.h"
#include "attention/spec.h"
#include "eval/metrics.h"
#include "io/atomic_file.h"
#include "io/video.h"
#include "io/weights_h5.h"
#include "tests/fuzz/harness.h"
#include "tests/fuzz/harness_cli.h"
#include "tests/fuzz/harness_prompt.h"
#include "tests/model_util.h"
#include "tests/fuzz/harness_safetensors.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace ditgen {
namespace {

using test::listing;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// CPU seconds (user + system) the process has used, from /proc/PID/stat; -1 when gone.
double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), {});
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);
  return ticks / double(sysconf(_SC_CLK_TCK));
}

// ------------------------------------------------------------------------------ interruption

// True once the process has a handler for `sig` (SigCgt in /proc/PID/status).
bool catches(pid_t pid, int sig) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("SigCgt:", 0) == 0) return (std::stoull(line.substr(7), nullptr, 16) >> (sig - 1)) & 1;
  return false;
}

// Starts `ditgen args...` with stdout and stderr into `log`.
pid_t spawn_ditgen(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    if (f) dup2(fileno(stdout), 2);
    std::vector<char*> argv{const_cast<char*>(DITGEN_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(DITGEN_BINARY, argv.data());
    _exit(127);
  }
  return pid;
}

// Waits up to `seconds` for the child; kills it and returns -1 if it is still running.
int wait_status(pid_t pid, double seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  int st = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
    if (waitpid(pid, &st, WNOHANG) == pid) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

class Interrupt : public ::testing::TestWithParam<int> {};

TEST_P(Interrupt, MidRunStopsCleanlyAndLeavesNothing) {
  const int sig = GetParam();
  test::TempDir dir;
  const std::string log = (dir.path.parent_path() / (dir.path.filename().string() + ".log")).string();
  // A run far longer than the test waits (10000 steps), with every kind of output.
  const pid_t pid = spawn_ditgen({"generate", "--model", "builtin:tiny", "--frames", "4", "--steps", "10000", "--threads", "1",
                                  "--out", dir / "v.mkv", "--frames-dir", dir / "frames", "--sheet", dir / "sheet.png",
                                  "--json", dir / "run.json"},
                                 log);
  ASSERT_GT(pid, 0);
  // Mid-run: the handlers are installed (they are, after the model is loaded and just before
  // sampling: /proc/PID/status lists the caught signals) and sampling has used CPU time since.
  const auto t0 = std::chrono::steady_clock::now();
  double cpu_at_handlers = -1;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120)) {
    if (cpu_at_handlers < 0 && catches(pid, sig)) cpu_at_handlers = cpu_seconds(pid);
    if (cpu_at_handlers >= 0 && cpu_seconds(pid) > cpu_at_handlers + 0.3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(cpu_at_handlers, 0) << "the handlers were never installed";
  ASSERT_EQ(kill(pid, sig), 0);
  const auto t_signal = std::chrono::steady_clock::now();
  const int st = wait_status(pid, 60);
  const double stop_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_signal).count();
  const std::string out = slurp(log);
  fs::remove(log);
  ASSERT_NE(st, -1) << "did not stop within 60 s of signal " << sig << "\n" << out;
  ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0) << "\n" << out;
  EXPECT_EQ(WEXITSTATUS(st), 1) << out;
  EXPECT_NE(out.find("ditgen: error: interrupted by signal; no output written"), std::string::npos) << out;
  EXPECT_LT(stop_seconds, 10) << "stops between steps, so within a step's time";
  EXPECT_TRUE(listing(dir.path).empty()) << "left behind: " << *listing(dir.path).begin();
}

INSTANTIATE_TEST_SUITE_P(Signals, Interrupt, ::testing::Values(SIGINT, SIGTERM),
                         [](const ::testing::TestParamInfo<int>& i) { return i.param == SIGINT ? "SIGINT" : "SIGTERM"; });

TEST(InterruptWriting, CommitAfterAnInterruptPublishesNothing) {
  test::TempDir dir;
  io::Frames f;
  f.frames = 2, f.height = 8, f.width = 8, f.channels = 1;
  f.data.assign(2 * 8 * 8, 128);
  io::request_interrupt();
  EXPECT_THROW(io::write_output(dir / "a.png", f, 8, false), io::Interrupted);
  EXPECT_THROW(io::write_output(dir / "a.mkv", f, 8, false), io::Interrupted);
  io::clear_interrupt();
  EXPECT_TRUE(listing(dir.path).empty());
  io::write_output(dir / "a.png", f, 8, false);
  EXPECT_TRUE(fs::exists(dir / "a.png"));
}

TEST(InterruptWriting, SecondSignalRemovesTemporariesAndExitsAtOnce) {
  test::TempDir dir;
  const std::string target = dir / "big.mkv";
  const pid_t pid = fork();
  if (pid == 0) {
    io::install_interrupt_handlers();
    io::AtomicOutput out(target, false);
    std::ofstream(out.temp_path()) << "half a video";
    raise(SIGINT);  // first: flag only
    if (!io::interrupt_requested() || !fs::exists(out.temp_path())) _exit(3);
    raise(SIGTERM);  // second: clean up and exit now
    _exit(4);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 128 + SIGTERM);
  EXPECT_TRUE(listing(dir.path).empty()) << "left behind: " << *listing(dir.path).begin();
}

// ------------------------------------------------------------------------------ in-process runs

DiTConfig small_config() {
  DiTConfig c = test::small_config();
  c.ffn_dim = 64;
  c.frame_height = c.frame_width = 32;
  return c;
}

pipeline::GenerateResult run(pipeline::Model& model, const std::string& attn, int threads, int steps = 3) {
  omp_set_num_threads(threads);
  auto backend = attn::make_backend(attn);
  pipeline::GenerateOptions o;
  o.shape = LatentShape{4, 32, 32};  // 4 x 8 x 8 = 256 tokens
  o.condition.labels = {3, 7};
  o.steps = steps;
  o.cfg = 4;
  o.seed = 99;
  return pipeline::generate(model, *backend, o);
}

TEST(InterruptInProcess, StopsAfterTheCurrentStep) {
  pipeline::Model model = test::random_model(small_config(), 5);
  io::request_interrupt();
  EXPECT_THROW(run(model, "dense", 2), io::Interrupted);
  io::clear_interrupt();
}

const char* kSpecs[] = {"dense", "radial", "window:window=3x3x3,tile=2x2x2", "svg", "topp:p=0.8"};

TEST(Determinism, SameSeedAndSettingsAreBitIdenticalForAFixedThreadCount) {
  pipeline::Model model = test::random_model(small_config(), 5);
  for (const char* spec : kSpecs)
    for (int threads : {1, 2}) {
      const auto a = run(model, spec, threads), b = run(model, spec, threads);
      ASSERT_EQ(a.video.size(), b.video.size());
      EXPECT_EQ(std::memcmp(a.video.data(), b.video.data(), sizeof(float) * a.video.size()), 0)
          << spec << ", " << threads << " threads: max |diff| " << test::max_abs_diff(a.video.data(), b.video.data(), a.video.size());
      EXPECT_EQ(a.frames.data, b.frames.data) << spec << ", " << threads << " threads";
    }
}

TEST(Determinism, OneAndTwoThreadsAgreeToAtLeast60dB) {
  pipeline::Model model = test::random_model(small_config(), 5);
  for (const char* spec : kSpecs) {
    const auto a = run(model, spec, 1), b = run(model, spec, 2);
    ASSERT_EQ(a.frames.data.size(), b.frames.data.size());
    const std::vector<float> fa(a.frames.data.begin(), a.frames.data.end()), fb(b.frames.data.begin(), b.frames.data.end());
    const double u8 = eval::psnr(fa.data(), fb.data(), int64_t(fa.size()), 255.0);
    const double fl = eval::psnr(a.video.data(), b.video.data(), int64_t(a.video.size()), 2.0);
    std::printf("%-32s 1 vs 2 threads: PSNR %.1f dB (8-bit frames), %.1f dB (float output)\n", spec, u8, fl);
    EXPECT_GE(u8, 60.0) << spec;
    EXPECT_GE(fl, 60.0) << spec;
  }
}

// ------------------------------------------------------------------------------ numerical guard

TEST(NumericalGuard, OverflowingWeightsNameTheStepAndBlock) {
  test::TempDir dir;
  DiTConfig c = small_config();
  c.frame_height = c.frame_width = 16;
  DiTWeights w = DiTWeights::random(c, 8);
  // Finite on disk (float32), but block 1's feed-forward overflows float32 on the first step.
  for (Tensor* t : {&w.blocks[1].ffn0.weight, &w.blocks[1].ffn2.weight})
    for (int64_t i = 0; i < t->size(); ++i) (*t)[i] *= 1e25f;
  const std::string model = dir / "huge.h5", out = dir / "v.mkv";
  io::save_weights(model, c, w, io::DiskType::Float32, false);
  const auto before = listing(dir.path);
  const auto r = test::run_ditgen("generate --model " + model + " --frames 2 --steps 3 --out " + out + " --json " + (dir / "r.json"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("numerical guard: non-finite value at step 0, block 1"), std::string::npos) << r.output;
  EXPECT_EQ(listing(dir.path), before);
}

// ------------------------------------------------------------------------------ fuzz inputs

// Every seed and every input a fuzzer once crashed on (tests/fuzz/regressions/), through the
// harness bodies: the contract must hold in the ordinary build too.
void replay(const char* harness, std::string (*body)(const uint8_t*, size_t)) {
  omp_set_num_threads(2);
  int count = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path d = fs::path(DITGEN_SOURCE_DIR) / "tests/fuzz" / kind / harness;
    if (!fs::is_directory(d)) continue;
    for (const auto& e : fs::directory_iterator(d)) {
      const std::string bytes = slurp(e.path().string());
      EXPECT_EQ(body(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), "") << e.path().filename();
      ++count;
    }
  }
  EXPECT_GT(count, 0) << "no inputs for " << harness;
}

TEST(FuzzInputs, Weights) { replay("weights", fuzz::weights_one); }

// Files on which libhdf5 1.10 itself crashes (heap overflows and SEGVs in its attribute and
// dataset decoding; docs/robustness.md). They cannot be replayed in-process; the engine reads
// weight files in a child process (pipeline::load_weights_isolated), so ditgen reports them as a
// runtime error and writes nothing.
TEST(FuzzInputs, WeightFilesThatCrashLibhdf5AreRefusedCleanly) {
  const fs::path d = fs::path(DITGEN_SOURCE_DIR) / "tests/fuzz/regressions/weights_libhdf5";
  test::TempDir dir;
  int count = 0;
  for (const auto& e : fs::directory_iterator(d)) {
    const std::string out = dir / "o.png";
    const auto r = test::run_ditgen("generate --model " + e.path().string() + " --frames 1 --steps 1 --out " + out);
    EXPECT_EQ(r.status, 1) << e.path().filename() << ": " << r.output;
    EXPECT_NE(r.output.find("ditgen: error: weight file '" + e.path().string() + "'"), std::string::npos)
        << e.path().filename() << ": " << r.output;
    EXPECT_TRUE(listing(dir.path).empty()) << e.path().filename();
    ++count;
  }
  EXPECT_GT(count, 0);
}

TEST(IsolatedLoad, SameWeightsAsInProcessAndTheLoadersMessages) {
  test::TempDir dir;
  const DiTConfig c = small_config();
  DiTWeights w = DiTWeights::random(c, 17);
  const std::string p = dir / "m.h5";
  io::save_weights(p, c, w, io::DiskType::BFloat16, false);
  io::LoadedModel a = io::load_weights(p), b = pipeline::load_weights_isolated(p);
  EXPECT_EQ(a.config.fields(), b.config.fields());
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  auto ta = a.weights.tensor_table(a.config), tb = b.weights.tensor_table(b.config);
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].dtype, b.tensors[i].dtype);
    EXPECT_EQ(a.tensors[i].shape, b.tensors[i].shape);
    ASSERT_EQ(ta[i].tensor->shape(), tb[i].tensor->shape()) << ta[i].name;
    EXPECT_EQ(std::memcmp(ta[i].tensor->data(), tb[i].tensor->data(), sizeof(float) * size_t(ta[i].tensor->size())), 0)
        << ta[i].name;
  }
  const io::LoadedModel t = pipeline::load_weights_isolated(p, false);
  EXPECT_EQ(t.tensors.size(), a.tensors.size());
  try {
    pipeline::load_weights_isolated(dir / "missing.h5");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "weight file '" + (dir / "missing.h5") + "': no such file");
  }
}
TEST(FuzzInputs, AttnSpec) { replay("attn_spec", fuzz::attn_spec_one); }
TEST(FuzzInputs, ParoCalib) { replay("paro_calib", fuzz::paro_calib_one); }
TEST(FuzzInputs, Safetensors) { replay("safetensors", fuzz::safetensors_one); }
TEST(FuzzInputs, CliValues) { replay("cli_values", fuzz::cli_values_one); }
TEST(FuzzInputs, Prompt) { replay("prompt", fuzz::prompt_one); }

// The tokenizer once linked Debian's libsentencepiece, whose bundled protobuf clashed with the
// system libprotobuf that OpenCV's dnn brings into ditgen: such a process crashed before main.
// This executable loads that libprotobuf as ditgen does, and tokenizes.
TEST(FuzzInputs, TokenizerRunsBesideOpenCvsProtobuf) {
  EXPECT_NE(slurp("/proc/self/maps").find("libprotobuf"), std::string::npos)
      << "libprotobuf is no longer loaded here: this test no longer shows that the two can share a process";
  const TokenizedPrompt p = fuzz::prompt_tokenizer().encode("a cat surfing");
  EXPECT_GT(p.ids.size(), 1u);
  EXPECT_EQ(p.ids.back(), fuzz::prompt_tokenizer().eos_id());
}

}  // namespace
}  // namespace ditgen
