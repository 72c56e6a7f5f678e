// `dcmstreams cluster-ca`: the cluster's own certificate authority
// (docs/cluster.md). `init` makes it; `sign NAME` makes the certificate and
// key of the head or of a worker, which each side shows and checks with
// mutual TLS (cluster.tls, dcmstreams worker --certificate).

#include "main/cli.hpp"
#include "main/commands.hpp"
#include "net/certificate_authority.hpp"

#include <iostream>

namespace dcmstreams::commands {

int cluster_ca(int argc, char** argv) {
  cli::command_line args{
      "cluster-ca",
      "init|sign NAME [--dir DIR] [--out DIR]",
      "init: makes the cluster CA in DIR (ca.pem for everyone's --ca, ca.key to keep safe). "
      "sign NAME: makes NAME.pem and NAME.key for the head or a worker, signed by that CA.",
      {{"dir", "DIR", "the CA's folder (default: ./cluster-ca)"},
       {"out", "DIR", "where sign writes NAME.pem and NAME.key (default: the CA's folder)"}}};
  if (auto exit_code = args.parse_or_help(argc, argv))
    return *exit_code;
  auto& words = args.positional();
  std::filesystem::path dir = args.value("dir").value_or("cluster-ca");
  if (words.size() == 1 && words[0] == "init") {
    if (auto problem = net::create_cluster_ca(dir)) {
      std::cerr << "dcmstreams cluster-ca: " << problem->message << "\n";
      return 1;
    }
    std::cout << "made the cluster CA: " << (dir / "ca.pem").string()
              << " (give it to every member as cluster.tls.ca / --ca) and "
              << (dir / "ca.key").string() << " (keep it where you sign)\n";
    return 0;
  }
  if (words.size() == 2 && words[0] == "sign") {
    std::filesystem::path out = args.value("out").value_or(dir.string());
    if (auto problem = net::sign_cluster_certificate(dir, words[1], out)) {
      std::cerr << "dcmstreams cluster-ca: " << problem->message << "\n";
      return 1;
    }
    std::cout << "signed " << (out / (words[1] + ".pem")).string() << " with its key "
              << (out / (words[1] + ".key")).string() << "\n";
    return 0;
  }
  std::cerr << args.error("say init, or sign NAME") << "\n";
  return 2;
}

} // namespace dcmstreams::commands
