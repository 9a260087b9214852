// Subcommands of the `wai` program. Each takes the arguments after its name and returns the exit code;
// wai::Error escaping a command is reported by main as "wai CMD: error: ..." with exit code 1.
#pragma once

namespace wai::cli {

int cmd_inspect(int argc, char** argv);     // cli/cmd_inspect.cpp
int cmd_make_model(int argc, char** argv);  // cli/cmd_make_model.cpp
int cmd_eval(int argc, char** argv);        // cli/cmd_eval.cpp
int cmd_tokenize(int argc, char** argv);    // cli/cmd_tokenize.cpp
int cmd_run(int argc, char** argv);         // cli/cmd_run.cpp
int cmd_serve(int argc, char** argv);       // cli/cmd_serve.cpp
int cmd_bench(int argc, char** argv);       // cli/cmd_bench.cpp

}  // namespace wai::cli
