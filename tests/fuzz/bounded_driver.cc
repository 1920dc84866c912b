// A bounded stand-in for libFuzzer's driver, so every fuzz target also runs under ctest with
// g++: replays the seed corpus, then a fixed number of deterministic mutations of it.
// Usage: TARGET ITERATIONS [CORPUS_DIR...]. Long coverage-guided runs: `make fuzz` (clang).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

const char* kTokens[] = {"\r\n", "\n", "\r\n\r\n", "--", "--b\r\n", "boundary=\"b\"",
                         "Content-Type: multipart/mixed; boundary=b\r\n",
                         "Content-Type: message/rfc822\r\n", "=?utf-8?q?x=41?=", "\r\n.\r\n",
                         ".", "\0", ":", "<>", "RCPT TO:<a@b.c>\r\n", "MAIL FROM:<>\r\n",
                         "DATA\r\n", ";", "\"", "(", ")", "\\"};

std::string mutate(std::string s, const std::vector<std::string>& corpus, std::mt19937& rng) {
  int rounds = 1 + static_cast<int>(rng() % 6);
  for (int r = 0; r < rounds; ++r) {
    size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 6) {
      case 0:
        if (!s.empty()) s[pos % s.size()] ^= static_cast<char>(1 << (rng() % 8));
        break;
      case 1:
        s.insert(pos, 1, static_cast<char>(rng()));
        break;
      case 2:
        if (!s.empty()) s.erase(pos % s.size(), 1 + rng() % 16);
        break;
      case 3: {
        const char* t = kTokens[rng() % (sizeof kTokens / sizeof *kTokens)];
        s.insert(pos, t[0] ? std::string(t) : std::string(1, '\0'));
        break;
      }
      case 4:
        if (!s.empty()) {
          size_t start = rng() % s.size();
          size_t len = 1 + rng() % std::min<size_t>(64, s.size() - start);
          s.insert(pos, s.substr(start, len));
        }
        break;
      case 5:
        if (!corpus.empty()) {
          const std::string& other = corpus[rng() % corpus.size()];
          s = s.substr(0, pos) + other.substr(other.empty() ? 0 : rng() % other.size());
        }
        break;
    }
    if (s.size() > 1 << 20) s.resize(1 << 20);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 1000;
  std::vector<std::string> corpus;
  for (int arg = 2; arg < argc; ++arg) {
    if (!std::filesystem::is_directory(argv[arg])) continue;
    for (const auto& e : std::filesystem::recursive_directory_iterator(argv[arg])) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  corpus.emplace_back();
  for (const auto& c : corpus)
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(c.data()), c.size());
  std::mt19937 rng(20261124);
  for (long i = 0; i < iterations; ++i) {
    std::string input = mutate(corpus[rng() % corpus.size()], corpus, rng);
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  }
  std::printf("%zu seeds and %ld mutations ran clean\n", corpus.size(), iterations);
  return 0;
}
