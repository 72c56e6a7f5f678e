// packaging/dcmstreams.service: systemd accepts it, and the command line it
// starts is one `dcmstreams serve` understands.

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <sstream>

using namespace dcmstreams::fixtures;

namespace {

std::string unit_text() {
  return read_file(source_dir() / "packaging" / "dcmstreams.service");
}

std::string exec_start(const std::string& unit) {
  std::smatch match;
  static const std::regex line{R"(\nExecStart=([^\n]+))"};
  EXPECT_TRUE(std::regex_search(unit, match, line));
  return match[1];
}

} // namespace

TEST(packaging, systemd_accepts_the_unit_and_it_restarts_always) {
  auto unit = unit_text();
  EXPECT_NE(unit.find("\nRestart=always\n"), std::string::npos);
  EXPECT_NE(unit.find("\nEnvironment=TCP_NODELAY=1\n"), std::string::npos);
  // systemd-analyze wants the program to exist: point it at the one built.
  auto command = exec_start(unit);
  auto program = command.substr(0, command.find(' '));
  temp_dir scratch;
  auto local = unit;
  local.replace(local.find(program), program.size(), dcmstreams_binary().string());
  write_file(scratch / "dcmstreams.service", local);
  auto checked =
      run({"systemd-analyze", "verify", "--man=no", (scratch / "dcmstreams.service").string()});
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(checked.output.find("dcmstreams.service"), std::string::npos) << checked.output;
}

TEST(packaging, every_option_the_unit_passes_is_one_serve_knows) {
  auto command = exec_start(unit_text());
  std::istringstream words{command};
  std::string program, subcommand;
  words >> program >> subcommand;
  EXPECT_EQ(subcommand, "serve");
  auto help = run({dcmstreams_binary().string(), "serve", "--help"}).output;
  int options = 0;
  for (std::string word; words >> word;)
    if (word.rfind("--", 0) == 0) {
      ++options;
      EXPECT_NE(help.find("  " + word + " "), std::string::npos) << word << " in " << command;
    }
  EXPECT_GE(options, 4);
}
