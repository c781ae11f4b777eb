// --attn SPEC: every method spells out its defaults, and unknown names, keys and values are
// rejected with a message naming them.
#include <gtest/gtest.h>

#include <stdexcept>

#include <cstdio>

#include "attention/methods.h"
#include "attention/paro.h"
#include "attention/spec.h"

using namespace ditgen::attn;

namespace {

// The plain spec of a method; paro needs a calibration file.
std::string plain(const std::string& name) {
  if (name != "paro") return name;
  static const std::string path = [] {
    ParoCalibration c;
    c.tp = 2, c.hp = 4, c.wp = 4, c.block = 16, c.heads = 1, c.layers = 0;
    const std::string p = testing::TempDir() + "sparse_spec_paro.json";
    c.write(p);
    return p;
  }();
  return "paro:calib=" + path;
}

std::string error_of(const std::string& spec) {
  try {
    make_backend(spec);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SparseSpec, UnknownMethodIsNamed) {
  const std::string e = error_of("spiral:block=64");
  EXPECT_NE(e.find("'spiral'"), std::string::npos) << e;
  EXPECT_NE(e.find("radial"), std::string::npos) << e;  // lists the known methods
}

TEST(SparseSpec, UnknownKeysAreNamed) {
  for (const MethodInfo& m : methods()) {
    const std::string e = error_of(m.name + ":blok=64,zzz=1");
    EXPECT_NE(e.find("'blok'"), std::string::npos) << m.name << ": " << e;
    EXPECT_NE(e.find("'zzz'"), std::string::npos) << m.name << ": " << e;
    EXPECT_NE(e.find("block"), std::string::npos) << m.name << ": " << e;  // lists the valid keys
  }
}

TEST(SparseSpec, BadValuesAreNamed) {
  for (const std::string spec : {"radial:block=0", "radial:decay=x", "window:window=3x3", "window:layout=spiral",
                                 "radial:dense_steps=often", "radial:sink=maybe", "window:tile=0x1x1"}) {
    const std::string e = error_of(spec);
    EXPECT_FALSE(e.empty()) << spec;
    const std::string key = spec.substr(spec.find(':') + 1, spec.find('=') - spec.find(':') - 1);
    EXPECT_NE(e.find(key), std::string::npos) << spec << ": " << e;
  }
  EXPECT_FALSE(error_of("radial:block").empty());  // not key=value
}

TEST(SparseSpec, SpecSpellsOutDefaultsAndRoundTrips) {
  EXPECT_EQ(make_backend("dense")->spec(), "dense:block=64");
  EXPECT_EQ(make_backend("radial")->spec(),
            "radial:decay=0.2,sink=1,shrink=1,block=128,layout=frame,tile=4x4x4,dense_steps=0.25,dense_layers=1,"
            "auto_tol=0.05,auto_rows=64,refresh=0");
  for (const MethodInfo& m : methods()) {
    const std::string full = make_backend(plain(m.name))->spec();
    EXPECT_EQ(full.rfind(m.name, 0), 0u) << full;
    EXPECT_EQ(make_backend(full)->spec(), full);
  }
  EXPECT_EQ(make_backend("window:window=5x3x3,dense_steps=auto")->spec().find("window:window=5x3x3"), 0u);
}

TEST(SparseSpec, SparseBackendsStartDense) {
  for (const MethodInfo& m : methods()) EXPECT_EQ(make_backend(plain(m.name))->last_density(), 1.0) << m.name;
  EXPECT_NE(error_of("paro").find("calib"), std::string::npos);
  EXPECT_NE(error_of("paro:calib=/nonexistent/calib.json").find("calib.json"), std::string::npos);
}
