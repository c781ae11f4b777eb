#pragma once
// Writing generated frames: H.264 .mp4 and lossless FFV1 .mkv through OpenCV's FFmpeg
// backend, PNG through libpng (one image for T = 1, a contact sheet for T > 1), and a
// directory of per-frame PNGs. Every file is written to a temporary path and renamed.
#include <cstdint>
#include <string>
#include <vector>

#include "core/frames.h"
#include "io/atomic_file.h"

namespace ditgen::io {

using ditgen::Frames;

// Extensions the writer accepts, for validation before a long run.
bool is_supported_output(const std::string& path);
std::string supported_outputs();  // ".mp4, .mkv, .png"

// Dispatches on the extension. Throws std::runtime_error naming the path on failure; no
// file is left at `path` unless it succeeded. With a batch, the finished files wait in it
// until its commit().
void write_output(const std::string& path, const Frames& f, double fps, bool overwrite, OutputBatch* batch = nullptr);
void write_png(const std::string& path, const uint8_t* pixels, int height, int width, int channels, bool overwrite,
               OutputBatch* batch = nullptr);
void write_contact_sheet(const std::string& path, const Frames& f, bool overwrite, OutputBatch* batch = nullptr);
void write_video(const std::string& path, const Frames& f, double fps, bool overwrite, OutputBatch* batch = nullptr);
// frame_0000.png ... into an existing or new directory.
std::string frame_file_name(int t);
void write_frames_dir(const std::string& dir, const Frames& f, bool overwrite, OutputBatch* batch = nullptr);
// What write_frames_dir would refuse, checked before a long run: a path that is not a
// directory, a missing or unwritable parent (or directory), or frame files of the first
// `frames` already there without `overwrite`. Throws std::invalid_argument naming the path.
void check_frames_dir(const std::string& dir, int frames, bool overwrite);

// Reads a video (.mp4/.mkv), a PNG, or a directory of PNG frames back as grayscale or colour.
Frames read_frames(const std::string& path, int channels = 1);

}  // namespace ditgen::io
