// `dcmstreams passwd`: makes the argon2id hash of a web user's password, to
// put into web.users of dcmstreams.json. The password is read from the
// terminal without echo, or from standard input (one line) in scripts.

#include "main/cli.hpp"
#include "main/commands.hpp"
#include "pipeline/foundation/json.hpp"
#include "web/auth.hpp"

#include <termios.h>
#include <unistd.h>

#include <iostream>

namespace dcmstreams::commands {

namespace {

std::string read_password(const char* prompt) {
  bool terminal = ::isatty(STDIN_FILENO);
  termios saved{};
  if (terminal) {
    std::cerr << prompt << std::flush;
    ::tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (terminal) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::cerr << "\n";
  }
  return line;
}

} // namespace

int passwd(int argc, char** argv) {
  cli::command_line args{
      "passwd",
      "[--name NAME --role admin|viewer]",
      "Reads a password (from the terminal without echo, or one line of standard input) and "
      "prints its argon2id hash; with --name, the whole entry for web.users.",
      {{"name", "NAME", "user name: print a web.users entry instead of the bare hash"},
       {"role", "ROLE", "admin (may change things) or viewer (may look); default viewer"}}};
  if (auto exit_code = args.parse_or_help(argc, argv))
    return *exit_code;
  auto role = args.value("role").value_or("viewer");
  if (role != "admin" && role != "viewer") {
    std::cerr << args.error("--role must be admin or viewer, not " + role) << "\n";
    return 2;
  }
  auto password = read_password("password: ");
  if (::isatty(STDIN_FILENO) && read_password("again: ") != password) {
    std::cerr << "dcmstreams passwd: the two passwords differ; nothing was printed\n";
    return 1;
  }
  if (password.size() < 8) {
    std::cerr << "dcmstreams passwd: the password is shorter than 8 characters; choose a longer "
                 "one\n";
    return 1;
  }
  auto hash = web::hash_password(password);
  if (!hash) {
    std::cerr << "dcmstreams passwd: hashing failed (out of memory?)\n";
    return 1;
  }
  if (auto name = args.value("name")) {
    json::value user = {{"name", *name}, {"password_hash", *hash}, {"role", role}};
    std::cout << json::dump(user) << "\n";
  } else {
    std::cout << *hash << "\n";
  }
  return 0;
}

} // namespace dcmstreams::commands
