// `wai tokenize` end to end: the ids it prints for the golden texts equal the expected ids.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

namespace {

const std::string kVocab = std::string(WAI_SHARED_DIR) + "/testdata/tokenizer/mistral-v0.1-vocab.gguf";

// Runs a shell command; returns (exit status, stdout).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, out};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

TEST(CliTokenize, PrintsIdsWithAndWithoutBos) {
  const std::string bin = WAI_BIN;
  EXPECT_EQ(run(bin + " tokenize -m '" + kVocab + "' 'Hello world'"), std::make_pair(0, std::string("1 22557 1526\n")));
  EXPECT_EQ(run(bin + " tokenize -m '" + kVocab + "' --no-bos ' Hello world'"),
            std::make_pair(0, std::string("28705 22557 1526\n")));
  // Reference ids of mistral-reference.md §5: "[INST] a [/INST]" as one sp() segment.
  EXPECT_EQ(run(bin + " tokenize -m '" + kVocab + "' '[INST] a [/INST]'"),
            std::make_pair(0, std::string("1 733 16289 28793 264 733 28748 16289 28793\n")));
  EXPECT_EQ(run("printf 'x\\377y' | " + bin + " tokenize -m '" + kVocab + "' --stdin --no-bos --pieces").first, 0);
}

TEST(CliTokenize, Errors) {
  const std::string bin = WAI_BIN;
  EXPECT_EQ(run(bin + " tokenize 'no model' 2>/dev/null").first, 2);
  EXPECT_EQ(run(bin + " tokenize -m /nonexistent.gguf hi 2>/dev/null").first, 1);
  EXPECT_EQ(run(bin + " tokenize -m '" + kVocab + "' --bogus hi 2>/dev/null").first, 1);
}

}  // namespace
