// dcmstreams: a DICOM processing node. This file only dispatches to the
// sub-commands (main/commands.hpp).

#include "build_info.hpp"
#include "main/commands.hpp"
#include "pipeline/dicom/dcmtk_log.hpp"
#include "pipeline/foundation/log.hpp"
#include "web/routes.hpp"

#include <cstring>
#include <exception>
#include <iostream>
#include <string>

namespace {

const char* usage = R"(usage: dcmstreams <command> [options]

commands:
  serve    receive studies by C-STORE and run the stream their called AE title names
  send     send DICOM files by C-STORE over parallel associations
  synth    write synthetic CT or MR studies
  check    validate the configuration, stream folders and routing file
  passwd   make a password hash for a web user (web.users in dcmstreams.json)
  worker   join a head node (its cluster.port) and run jobs it hands over
  cluster-ca  make the cluster's CA, and sign the head's and workers' certificates
  routes   list the HTTP routes, who may call each, and what it does (Markdown)

dcmstreams <command> --help shows the options of a command.
dcmstreams --version shows the version.
)";

} // namespace

int main(int argc, char** argv) {
  using namespace dcmstreams;
  // DCMTK's warnings and errors go through log:: as ours do.
  route_dcmtk_log_to_node_log();
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::cout << usage;
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  if (command == "--version") {
    std::cout << "dcmstreams " << build_info::version << " (" << build_info::build_type << ", "
              << build_info::compiler << ")\n";
    return 0;
  }
  try {
    if (command == "serve")
      return commands::serve(argc, argv);
    if (command == "send")
      return commands::send(argc, argv);
    if (command == "synth")
      return commands::synth(argc, argv);
    if (command == "check")
      return commands::check(argc, argv);
    if (command == "passwd")
      return commands::passwd(argc, argv);
    if (command == "worker")
      return commands::worker(argc, argv);
    if (command == "cluster-ca")
      return commands::cluster_ca(argc, argv);
    if (command == "routes") {
      std::cout << web::routes_markdown();
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "dcmstreams " << command << ": unexpected error: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "dcmstreams: unknown command '" << command << "'\n\n" << usage;
  return 2;
}
