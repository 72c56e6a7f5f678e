// `dcmstreams synth`: synthetic studies for tests and benchmarks.

#include "pipeline/dicom/synth.hpp"
#include "main/cli.hpp"
#include "main/commands.hpp"

#include <cstdio>
#include <iostream>

namespace dcmstreams::commands {

int synth(int argc, char** argv) {
  cli::command_line args{
      "synth",
      "--out DIR [options]",
      "Writes synthetic CT or MR studies with correct patient geometry and fresh UIDs\n"
      "to DIR/study<N>/series<M>/<slice>.dcm.",
      {{"out", "DIR", "folder to write to (created if missing)"},
       {"studies", "N", "number of studies (default: 1)"},
       {"series", "N", "series per study (default: 2)"},
       {"instances", "N", "slices per series (default: 20)"},
       {"rows", "R", "rows per image (default: 256)"},
       {"cols", "C", "columns per image (default: 256)"},
       {"modality", "CT|MR", "modality (default: CT)"},
       {"transfer-syntax", "NAME",
        "one of " + synth_transfer_syntax_names() + " (default: explicit-le)"}}};
  if (auto exit_code = args.parse_or_help(argc, argv))
    return *exit_code;
  synth_options options;
  if (auto out = args.value("out"))
    options.out = *out;
  struct numeric {
    const char* name;
    int* target;
  };
  for (auto [name, target] :
       {numeric{"studies", &options.studies}, numeric{"series", &options.series},
        numeric{"instances", &options.instances}, numeric{"rows", &options.rows},
        numeric{"cols", &options.cols}}) {
    auto value = args.integer(name, *target, 1, 100000);
    if (!value) {
      std::cerr << value.error().message << "\n";
      return 2;
    }
    *target = static_cast<int>(*value);
  }
  options.modality = args.value("modality").value_or(options.modality);
  options.transfer_syntax = args.value("transfer-syntax").value_or(options.transfer_syntax);
  if (auto problem = check_synth_options(options)) {
    std::cerr << args.error(problem->message) << "\n";
    return 2;
  }
  auto written = synthesize(options);
  if (!written) {
    std::cerr << "dcmstreams synth: " << written.error().message << "\n";
    return 1;
  }
  std::printf("wrote %zu studies, %zu instances (%.1f MB) to %s\n", written->study_uids.size(),
              written->files.size(), static_cast<double>(written->bytes) / 1e6,
              options.out.c_str());
  for (auto& uid : written->study_uids)
    std::printf("study %s\n", uid.c_str());
  return 0;
}

} // namespace dcmstreams::commands
