// `wai inspect`: runs the real binary (WAI_BIN) on files made by the Writer and on a corrupt file.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "format/gguf_writer.h"

namespace wai::gguf {
namespace {

struct Result {
  int status;
  std::string out;  // stdout and stderr
};

Result run(const std::string& args) {
  std::string cmd = std::string(WAI_BIN) + " inspect " + args + " 2>&1";
  Result r{-1, ""};
  std::FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string tmp_path(const char* name) {
  std::filesystem::create_directories(WAI_TEST_TMP);
  return std::string(WAI_TEST_TMP) + "/" + name;
}

TEST(WaiInspect, PrintsHeaderMetadataTensorsAndTotals) {
  Writer w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 5);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  Array toks{ValueType::STRING, {}};
  for (int i = 0; i < 20; ++i) toks.items.push_back(Value{ValueType::STRING, "tok" + std::to_string(i)});
  w.set_array("tokenizer.ggml.tokens", toks);
  std::vector<uint8_t> a(4 * 64 * 3), b(34 * 2 * 5);
  w.add_tensor("token_embd.weight", {64, 3}, DType::F32, a);
  w.add_tensor("blk.0.attn_q.weight", {64, 5}, DType::Q8_0, b);
  const std::string path = tmp_path("format_inspect.gguf");
  w.write(path);

  Result r = run(path);
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* line : {
           "version: 3\n", "alignment: 32\n", "metadata: 4 keys\n", "tensors: 2\n",
           "\"llama\"\n", "llama.block_count", "1e-05\n",
           "[20 x string: \"tok0\", \"tok1\", \"tok2\", \"tok3\", \"tok4\", \"tok5\", \"tok6\", \"tok7\", ...]\n",
           "token_embd.weight    f32   [64, 3]",
           "blk.0.attn_q.weight  q8_0  [64, 5]",
           "total: 2 tensors, 512 elements, 1108 bytes (1.08 KiB)\n",
       })
    EXPECT_NE(r.out.find(line), std::string::npos) << "missing: " << line << "\n" << r.out;
  // Offsets: the q8_0 tensor starts at the next multiple of 32 after 768 bytes.
  EXPECT_NE(r.out.find("768           340\n"), std::string::npos) << r.out;

  Result full = run(path + " --full");
  ASSERT_EQ(full.status, 0);
  EXPECT_NE(full.out.find("\"tok18\", \"tok19\"]"), std::string::npos) << full.out;
  Result two = run(path + " --max-items 2");
  EXPECT_NE(two.out.find("[20 x string: \"tok0\", \"tok1\", ...]"), std::string::npos) << two.out;
  std::filesystem::remove(path);
}

TEST(WaiInspect, RealModel) {
  Result r = run(std::string(WAI_SHARED_DIR) + "/models/stories260K.gguf");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("tensors: 48\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[512 x string: \"<unk>\", \"<s>\", \"</s>\""), std::string::npos);
  EXPECT_NE(r.out.find("total: 48 tensors"), std::string::npos);
}

TEST(WaiInspect, CorruptAndMissingFiles) {
  Writer w;
  w.set_u32("k", 1);
  auto bytes = w.to_bytes();
  bytes[4] = 1;  // version 1
  const std::string path = tmp_path("format_inspect_v1.gguf");
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  Result r = run(path);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("error: gguf: version 1 is not supported"), std::string::npos) << r.out;
  std::filesystem::remove(path);

  Result missing = run(tmp_path("does-not-exist.gguf"));
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.out.find("cannot open"), std::string::npos) << missing.out;

  EXPECT_EQ(run("").status, 2);                       // no file
  EXPECT_NE(run("x.gguf --bogus").out.find("unknown option '--bogus'"), std::string::npos);
}

}  // namespace
}  // namespace wai::gguf
