// `dcmstreams send`: a storage SCU with N parallel associations.

#include "main/cli.hpp"
#include "main/commands.hpp"
#include "net/storage_scu.hpp"
#include "pipeline/foundation/config.hpp"

#include <cstdio>
#include <iostream>

namespace dcmstreams::commands {

int send(int argc, char** argv) {
  cli::command_line args{
      "send",
      "[options] HOST PORT PATH...",
      "Sends DICOM files (folders are searched recursively) by C-STORE, each in its own\n"
      "transfer syntax with uncompressed fallbacks, over N parallel associations.\n"
      "Exits 1 if any file was not stored.",
      {{"aet", "AET", "calling AE title (default: DCMSTREAMS)"},
       {"aec", "AET", "called AE title (default: ANY-SCP)"},
       {"associations", "N", "parallel associations (default: 1)"},
       {"timeout", "S", "ACSE and DIMSE timeout in seconds (default: 30)"},
       {"tls-ca", "PEM", "speak TLS (BCP 195); the peer's certificate must chain to this"},
       {"tls-certificate", "PEM", "with --tls-ca: the certificate to show the peer"},
       {"tls-key", "PEM", "with --tls-certificate: its private key"}}};
  if (auto exit_code = args.parse_or_help(argc, argv))
    return *exit_code;
  if (args.positional().size() < 3) {
    std::cerr << args.error("needs HOST PORT and at least one PATH") << "\n";
    return 2;
  }
  send_options options;
  options.host = args.positional()[0];
  try {
    std::size_t used = 0;
    int port = std::stoi(args.positional()[1], &used);
    if (used != args.positional()[1].size() || port < 1 || port > 65535)
      throw std::out_of_range("port");
    options.port = static_cast<std::uint16_t>(port);
  } catch (const std::exception&) {
    std::cerr << args.error("PORT must be a number from 1 to 65535, not '" + args.positional()[1] +
                            "'")
              << "\n";
    return 2;
  }
  for (auto [key, target] : {std::pair{"aet", &options.calling_ae}, {"aec", &options.called_ae}}) {
    if (auto title = args.value(key)) {
      if (auto problem = check_ae_title(*title)) {
        std::cerr << args.error(std::string("--") + key + ": " + *problem) << "\n";
        return 2;
      }
      *target = *title;
    }
  }
  auto associations = args.integer("associations", 1, 1, 64);
  auto timeout = args.integer("timeout", 30, 1, 3600);
  for (auto* checked : {&associations, &timeout})
    if (!*checked) {
      std::cerr << checked->error().message << "\n";
      return 2;
    }
  options.associations = static_cast<int>(*associations);
  auto tls_ca = args.value("tls-ca"), tls_certificate = args.value("tls-certificate"),
       tls_key = args.value("tls-key");
  if (!tls_ca && (tls_certificate || tls_key)) {
    std::cerr << args.error("--tls-certificate and --tls-key need --tls-ca") << "\n";
    return 2;
  }
  if (bool(tls_certificate) != bool(tls_key)) {
    std::cerr << args.error("--tls-certificate and --tls-key go together") << "\n";
    return 2;
  }
  if (tls_ca)
    options.tls = dicom_tls_files{*tls_ca, tls_certificate.value_or(""), tls_key.value_or("")};
  options.acse_timeout_s = options.dimse_timeout_s = static_cast<int>(*timeout);

  std::vector<std::filesystem::path> paths(args.positional().begin() + 2, args.positional().end());
  auto files = net::collect_files(paths);
  if (!files) {
    std::cerr << "dcmstreams send: " << files.error().message << "\n";
    return 1;
  }
  if (files->empty()) {
    std::cerr << "dcmstreams send: no files to send in the given paths\n";
    return 1;
  }
  auto report = net::send_files(*files, options);
  if (!report) {
    std::cerr << "dcmstreams send: " << report.error().message << "\n";
    return 2;
  }
  for (auto& problem : report->problems)
    std::cout << problem.path << ": " << problem.message << "\n";
  double megabytes = static_cast<double>(report->bytes) / 1e6;
  double seconds = report->seconds > 0 ? report->seconds : 1e-9;
  std::printf("sent %zu of %zu files (%.1f MB) to %s@%s:%u in %.3f s: %.0f instances/s, "
              "%.1f MB/s, %d associations\n",
              report->succeeded + report->warnings, report->files, megabytes,
              options.called_ae.c_str(), options.host.c_str(), options.port, report->seconds,
              static_cast<double>(report->succeeded + report->warnings) / seconds,
              megabytes / seconds, report->associations_used);
  std::printf("succeeded: %zu, warnings: %zu, failed: %zu\n", report->succeeded, report->warnings,
              report->failed);
  return report->failed == 0 ? 0 : 1;
}

} // namespace dcmstreams::commands
