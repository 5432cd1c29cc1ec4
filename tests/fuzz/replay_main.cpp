// SPDX-License-Identifier: MIT
// Standalone driver: replays corpus files (or whole corpus directories)
// through LLVMFuzzerTestOneInput, so the corpus and every crash reproducer
// (tests/fuzz/regressions/<target>/) run as ordinary tests in builds without
// libFuzzer. Files whose names start with '.' (.gitkeep) are not inputs.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  size_t files = 0;
  auto run = [&](const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++files;
  };
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(p)) {
        if (e.is_regular_file() && e.path().filename().string().front() != '.') run(e.path());
      }
    } else {
      run(p);
    }
  }
  std::printf("replayed %zu inputs: all matched the reference\n", files);
  return files > 0 ? 0 : 1;
}
