// `wai run` as a user runs it: the binary (WAI_BIN) as a subprocess, stdout compared with llama.cpp's
// greedy story from /work/shared/models/README.md.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace {

const std::string kModel = std::string(WAI_SHARED_DIR) + "/models/stories260K.gguf";

struct Output {
  std::string out;
  int status = -1;
};

// Runs `cmd` through the shell; stdout captured, stderr discarded.
Output run(const std::string& cmd) {
  Output o;
  FILE* f = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!f) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) o.out.append(buf, n);
  int st = pclose(f);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

std::string wai() { return std::string("'") + WAI_BIN + "'"; }

TEST(RunCli, GreedyStoryMatchesLlamaCpp) {
  // README: "Reference greedy continuation (llama.cpp, temperature 0, prompt "Once upon a time", BOS
  // added)" shows the prompt followed by the continuation; `wai run` prints only the continuation.
  const std::string reference =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
      "she saw a big, red ball. She wanted to play with it, but it was too high.";
  const std::string prompt = "Once upon a time";
  auto o = run(wai() + " run -m '" + kModel + "' -p '" + prompt + "' -n 60 --temp 0 -t 1");
  ASSERT_EQ(o.status, 0) << o.out;
  ASSERT_GE((prompt + o.out).size(), reference.size()) << o.out;
  EXPECT_EQ((prompt + o.out).substr(0, reference.size()), reference);
  // The README's story is 58 tokens; llama.cpp (node-llama-cpp 3.21.1, generateCompletion with
  // maxTokens 60, temperature 0) continues it with "\nLily". tests/js/run_cli.test.mjs checks this
  // and other prompts against llama.cpp live.
  EXPECT_EQ(o.out.substr(reference.size() - prompt.size()), "\nLily");
}

TEST(RunCli, StopSequenceAndMaxTokens) {
  auto o = run(wai() + " run -t 1 -m '" + kModel + "' -p 'Once upon a time' -n 60 --temp 0 --stop ' named' --stop zzz");
  ASSERT_EQ(o.status, 0);
  EXPECT_EQ(o.out, ", there was a little girl");
}

TEST(RunCli, SeededSamplingIsReproducible) {
  const std::string cmd = wai() + " run -t 1 -m '" + kModel + "' -p 'The cat' -n 40 --temp 0.8 --seed 7";
  auto a = run(cmd), b = run(cmd);
  ASSERT_EQ(a.status, 0);
  EXPECT_FALSE(a.out.empty());
  EXPECT_EQ(a.out, b.out);
}

TEST(RunCli, BadInputIsAnErrorNotACrash) {
  EXPECT_EQ(run(wai() + " run -p hi").status, 1);                                      // no model
  EXPECT_EQ(run(wai() + " run -m /nonexistent.gguf -p hi").status, 1);                  // missing file
  EXPECT_EQ(run(wai() + " run -m '" + kModel + "' -p hi --bogus 1").status, 1);         // unknown option
  EXPECT_EQ(run(wai() + " run -m '" + kModel + "' -p hi --template nope").status, 1);   // unknown template
  EXPECT_EQ(run(wai() + " run -m '" + kModel + "' -p 'Once upon a time' --ctx 3").status, 1);  // too long
  auto help = run(wai() + " run --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--temp"), std::string::npos);
}

}  // namespace
