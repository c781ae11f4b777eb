// A run's outputs appear together or not at all (io::OutputBatch), and the frames directory is
// checked before a run (io::check_frames_dir).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include "io/atomic_file.h"
#include "io/video.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace ditgen {
namespace {

using test::listing;

io::Frames gray_frames(int t) {
  io::Frames f;
  f.frames = t, f.height = 8, f.width = 8, f.channels = 1;
  f.data.resize(size_t(t) * 8 * 8);
  for (size_t i = 0; i < f.data.size(); ++i) f.data[i] = uint8_t(i * 7);
  return f;
}

TEST(OutputBatch, NothingIsPublishedBeforeCommit) {
  test::TempDir dir;
  const io::Frames f = gray_frames(3);
  {
    io::OutputBatch batch;
    io::write_output(dir / "v.mkv", f, 8, false, &batch);
    io::write_frames_dir(dir / "frames", f, false, &batch);
    io::write_contact_sheet(dir / "sheet.png", f, false, &batch);
    // Written but waiting: only temporaries and the new directory exist.
    EXPECT_FALSE(fs::exists(dir / "v.mkv"));
    EXPECT_FALSE(fs::exists(dir / "sheet.png"));
    EXPECT_FALSE(fs::exists(dir.path / "frames" / "frame_0000.png"));
    batch.commit();
  }
  EXPECT_EQ(listing(dir.path), (std::set<std::string>{"v.mkv", "sheet.png", "frames", "frames/frame_0000.png",
                                                       "frames/frame_0001.png", "frames/frame_0002.png"}));
  EXPECT_EQ(io::read_frames(dir / "v.mkv").data, f.data);  // FFV1 is lossless
  EXPECT_EQ(io::read_frames(dir / "frames").data, f.data);
}

TEST(OutputBatch, AFailedLaterOutputLeavesNone) {
  test::TempDir dir;
  const io::Frames f = gray_frames(2);
  std::ofstream(dir / "taken.png") << "keep";
  try {
    io::OutputBatch batch;
    io::write_output(dir / "v.mkv", f, 8, false, &batch);
    io::write_frames_dir(dir / "frames", f, false, &batch);
    io::write_contact_sheet(dir / "taken.png", f, false, &batch);  // refused: present, no --overwrite
    FAIL() << "the third output should have been refused";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("taken.png' already exists"), std::string::npos) << e.what();
  }
  // The video and the frames were written first; the batch removed them and the directory.
  EXPECT_EQ(listing(dir.path), std::set<std::string>{"taken.png"});
}

TEST(OutputBatch, AnInterruptBeforeCommitPublishesNothing) {
  test::TempDir dir;
  const io::Frames f = gray_frames(2);
  {
    io::OutputBatch batch;
    io::write_output(dir / "a.png", f, 8, false, &batch);
    io::write_output(dir / "b.mkv", f, 8, false, &batch);
    io::request_interrupt();
    EXPECT_THROW(batch.commit(), io::Interrupted);
    io::clear_interrupt();
  }
  EXPECT_TRUE(listing(dir.path).empty());
}

TEST(FramesDir, CheckedBeforeTheRun) {
  test::TempDir dir;
  auto refused = [](const std::string& d, int frames, bool overwrite, const std::string& message) {
    try {
      io::check_frames_dir(d, frames, overwrite);
      ADD_FAILURE() << d << ": accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  io::check_frames_dir(dir / "new", 4, false);  // absent, parent writable: accepted, not created
  EXPECT_FALSE(fs::exists(dir / "new"));
  refused((dir.path / "no" / "new").string(), 4, false, "frames directory parent '" + (dir / "no") + "' does not exist");
  std::ofstream(dir / "file") << "x";
  refused(dir / "file", 4, false, "frames directory '" + (dir / "file") + "' is a file, expected a directory");
  fs::create_directory(dir / "old");
  std::ofstream(dir.path / "old" / "frame_0003.png") << "x";
  refused(dir / "old", 4, false, "already holds frame_0003.png; pass --overwrite");
  io::check_frames_dir(dir / "old", 3, false);  // frame 3 is not one of the first three
  io::check_frames_dir(dir / "old", 4, true);
}

}  // namespace
}  // namespace ditgen
