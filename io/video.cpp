#include "io/video.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <stdexcept>

#include "io/atomic_file.h"

namespace fs = std::filesystem;

namespace ditgen::io {

bool is_supported_output(const std::string& path) {
  const std::string e = extension(path);
  return e == ".mp4" || e == ".mkv" || e == ".png";
}

std::string supported_outputs() { return ".mp4 (H.264), .mkv (lossless FFV1), .png (image or contact sheet)"; }

namespace {
void png_to_file(const std::string& file, const uint8_t* pixels, int height, int width, int channels) {
  if (channels != 1 && channels != 3) throw std::runtime_error("PNG writer supports 1 or 3 channels, got " + std::to_string(channels));
  FILE* fp = std::fopen(file.c_str(), "wb");
  if (!fp) throw std::runtime_error("cannot open '" + file + "' for writing");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    std::fclose(fp);
    throw std::runtime_error("libpng: out of memory");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(fp);
    throw std::runtime_error("libpng failed writing '" + file + "' (disk full?)");
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y) png_write_row(png, const_cast<png_bytep>(pixels + size_t(y) * width * channels));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fflush(fp) != 0 || std::ferror(fp)) {
    std::fclose(fp);
    throw std::runtime_error("error writing '" + file + "' (disk full?)");
  }
  if (std::fclose(fp) != 0) throw std::runtime_error("error closing '" + file + "' (disk full?)");
}

// Grid of frames with a 2-pixel gray border, as close to square as the count allows.
std::vector<uint8_t> sheet_pixels(const Frames& f, int& sh, int& sw) {
  const int cols = int(std::ceil(std::sqrt(double(f.frames))));
  const int rows = (f.frames + cols - 1) / cols;
  const int pad = 2;
  sh = rows * (f.height + pad) + pad;
  sw = cols * (f.width + pad) + pad;
  std::vector<uint8_t> px(size_t(sh) * sw * f.channels, 96);
  for (int t = 0; t < f.frames; ++t) {
    const int r = t / cols, c = t % cols;
    for (int y = 0; y < f.height; ++y) {
      uint8_t* dst = px.data() + (size_t(pad + r * (f.height + pad) + y) * sw + pad + c * (f.width + pad)) * f.channels;
      std::copy_n(f.frame(t) + size_t(y) * f.width * f.channels, size_t(f.width) * f.channels, dst);
    }
  }
  return px;
}
}  // namespace

void write_png(const std::string& path, const uint8_t* pixels, int height, int width, int channels, bool overwrite,
               OutputBatch* batch) {
  auto out = std::make_unique<AtomicOutput>(path, overwrite);
  try {
    png_to_file(out->temp_path(), pixels, height, width, channels);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("writing '" + path + "' failed: " + e.what());  // name the output, not the temporary
  }
  publish(std::move(out), batch);
}

void write_contact_sheet(const std::string& path, const Frames& f, bool overwrite, OutputBatch* batch) {
  int sh = 0, sw = 0;
  const std::vector<uint8_t> px = sheet_pixels(f, sh, sw);
  write_png(path, px.data(), sh, sw, f.channels, overwrite, batch);
}

void write_video(const std::string& path, const Frames& f, double fps, bool overwrite, OutputBatch* batch) {
  const std::string ext = extension(path);
  int fourcc;
  if (ext == ".mp4") {
    fourcc = cv::VideoWriter::fourcc('a', 'v', 'c', '1');
  } else if (ext == ".mkv") {
    fourcc = cv::VideoWriter::fourcc('F', 'F', 'V', '1');
  } else {
    throw std::runtime_error("unknown video extension '" + ext + "' for '" + path + "': expected " + supported_outputs());
  }
  if (ext == ".mp4" && (f.height % 2 || f.width % 2))
    throw std::runtime_error("H.264 needs even frame sizes, got " + std::to_string(f.width) + "x" + std::to_string(f.height));
  auto out = std::make_unique<AtomicOutput>(path, overwrite);
  {
    cv::VideoWriter vw(out->temp_path(), cv::CAP_FFMPEG, fourcc, fps, cv::Size(f.width, f.height), true);
    if (!vw.isOpened())
      throw std::runtime_error("OpenCV's FFmpeg backend cannot open a " + ext + " writer for '" + path + "'");
    cv::Mat bgr;
    for (int t = 0; t < f.frames; ++t) {
      cv::Mat m(f.height, f.width, f.channels == 1 ? CV_8UC1 : CV_8UC3, const_cast<uint8_t*>(f.frame(t)));
      if (f.channels == 1) {
        cv::cvtColor(m, bgr, cv::COLOR_GRAY2BGR);
      } else {
        cv::cvtColor(m, bgr, cv::COLOR_RGB2BGR);
      }
      vw.write(bgr);
    }
    vw.release();
  }
  // OpenCV reports no write errors: read the file back to make sure every frame landed.
  cv::VideoCapture cap(out->temp_path(), cv::CAP_FFMPEG);
  int n = 0;
  cv::Mat m;
  while (cap.isOpened() && cap.read(m)) ++n;
  if (n != f.frames)
    throw std::runtime_error("writing '" + path + "' failed: " + std::to_string(n) + " of " + std::to_string(f.frames) +
                             " frames readable (disk full or codec missing?)");
  publish(std::move(out), batch);
}

void write_output(const std::string& path, const Frames& f, double fps, bool overwrite, OutputBatch* batch) {
  const std::string ext = extension(path);
  if (ext == ".png") {
    if (f.frames == 1) {
      write_png(path, f.frame(0), f.height, f.width, f.channels, overwrite, batch);
    } else {
      write_contact_sheet(path, f, overwrite, batch);
    }
    return;
  }
  if (ext == ".mp4" || ext == ".mkv") return write_video(path, f, fps, overwrite, batch);
  throw std::runtime_error("unknown output extension '" + ext + "' for '" + path + "': expected " + supported_outputs());
}

std::string frame_file_name(int t) {
  char name[32];
  std::snprintf(name, sizeof name, "frame_%04d.png", t);
  return name;
}

void check_frames_dir(const std::string& dir, int frames, bool overwrite) {
  if (dir.empty()) throw std::invalid_argument("frames directory path is empty");
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw std::invalid_argument("frames directory '" + dir + "' is a file, expected a directory");
  fs::path writable = dir;
  if (!fs::is_directory(dir, ec)) {
    writable = fs::path(dir).parent_path();
    if (writable.empty()) writable = ".";
    if (!fs::is_directory(writable, ec))
      throw std::invalid_argument("frames directory parent '" + writable.string() + "' does not exist");
  }
  if (!directory_writable(writable.string()))
    throw std::invalid_argument("frames directory '" + writable.string() + "' is not writable");
  if (overwrite || !fs::is_directory(dir, ec)) return;
  for (int t = 0; t < frames; ++t) {
    const fs::path p = fs::path(dir) / frame_file_name(t);
    if (fs::exists(p, ec))
      throw std::invalid_argument("frames directory '" + dir + "' already holds " + p.filename().string() +
                                  "; pass --overwrite to replace its frames");
  }
}

void write_frames_dir(const std::string& dir, const Frames& f, bool overwrite, OutputBatch* batch) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    const fs::path parent = fs::path(dir).parent_path();
    if (!parent.empty() && !fs::is_directory(parent, ec))
      throw std::runtime_error("frames directory parent '" + parent.string() + "' does not exist");
    if (!fs::create_directory(dir, ec) || ec)
      throw std::runtime_error("cannot create frames directory '" + dir + "': " + ec.message());
    if (batch) batch->created_directory(dir);
  }
  for (int t = 0; t < f.frames; ++t)
    write_png((fs::path(dir) / frame_file_name(t)).string(), f.frame(t), f.height, f.width, f.channels, overwrite,
              batch);
}

Frames read_frames(const std::string& path, int channels) {
  std::error_code ec;
  std::vector<cv::Mat> mats;
  auto add = [&](cv::Mat m, const std::string& from) {
    if (m.empty()) throw std::runtime_error("cannot decode '" + from + "'");
    cv::Mat c;
    if (channels == 1) {
      if (m.channels() == 3) cv::cvtColor(m, c, cv::COLOR_BGR2GRAY);
      else if (m.channels() == 4) cv::cvtColor(m, c, cv::COLOR_BGRA2GRAY);
      else c = m;
    } else {
      if (m.channels() == 1) cv::cvtColor(m, c, cv::COLOR_GRAY2RGB);
      else cv::cvtColor(m, c, cv::COLOR_BGR2RGB);
    }
    mats.push_back(c.clone());
  };
  if (!fs::exists(path, ec)) throw std::runtime_error("'" + path + "': no such file or directory");
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(path))
      if (extension(e.path().string()) == ".png") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    if (files.empty()) throw std::runtime_error("directory '" + path + "' holds no PNG frames");
    for (const auto& f : files) add(cv::imread(f, cv::IMREAD_UNCHANGED), f);
  } else if (extension(path) == ".png") {
    add(cv::imread(path, cv::IMREAD_UNCHANGED), path);
  } else {
    cv::VideoCapture cap(path, cv::CAP_FFMPEG);
    if (!cap.isOpened()) throw std::runtime_error("cannot open video '" + path + "'");
    cv::Mat m;
    while (cap.read(m)) add(m, path);
    if (mats.empty()) throw std::runtime_error("video '" + path + "' has no readable frames");
  }
  Frames f;
  f.frames = int(mats.size());
  f.height = mats[0].rows;
  f.width = mats[0].cols;
  f.channels = channels;
  f.data.resize(size_t(f.frames) * f.height * f.width * channels);
  for (int t = 0; t < f.frames; ++t) {
    if (mats[size_t(t)].rows != f.height || mats[size_t(t)].cols != f.width)
      throw std::runtime_error("frame " + std::to_string(t) + " of '" + path + "' has a different size");
    for (int y = 0; y < f.height; ++y)
      std::copy_n(mats[size_t(t)].ptr<uint8_t>(y), size_t(f.width) * channels,
                  f.data.data() + (size_t(t) * f.height + y) * f.width * channels);
  }
  return f;
}

}  // namespace ditgen::io
