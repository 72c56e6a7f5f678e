#pragma once
// The sub-commands of the dcmstreams program (DESIGN §4). Each returns the
// process exit code: 0 success, 1 failure, 2 bad usage.

namespace dcmstreams::commands {

int serve(int argc, char** argv);
int send(int argc, char** argv);
int synth(int argc, char** argv);
int check(int argc, char** argv);
int passwd(int argc, char** argv);
int worker(int argc, char** argv);
int cluster_ca(int argc, char** argv);

} // namespace dcmstreams::commands
