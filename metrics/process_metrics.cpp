#include "metrics/process_metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace dcmstreams::metrics {

namespace {

double boot_time_seconds() {
  std::ifstream stat{"/proc/stat"};
  std::string key;
  double value = 0;
  while (stat >> key) {
    if (key == "btime") {
      stat >> value;
      return value;
    }
    stat.ignore(1 << 16, '\n');
  }
  return 0;
}

double status_field_bytes(const char* field) {
  std::ifstream status{"/proc/self/status"};
  std::string line;
  std::string prefix = std::string(field) + ":";
  while (std::getline(status, line))
    if (line.rfind(prefix, 0) == 0)
      return std::stod(line.substr(prefix.size())) * 1024.0; // values are in kB
  return 0;
}

struct proc_stat {
  double cpu_seconds = 0;
  double virtual_bytes = 0;
  double resident_bytes = 0;
  double start_time_seconds = 0;
};

proc_stat read_proc_stat() {
  proc_stat result;
  std::ifstream file{"/proc/self/stat"};
  std::string content;
  std::getline(file, content);
  // The command name may hold spaces; fields resume after its closing paren.
  auto close = content.rfind(')');
  if (close == std::string::npos)
    return result;
  std::istringstream fields{content.substr(close + 2)};
  std::vector<std::string> f;
  std::string token;
  while (fields >> token)
    f.push_back(token);
  // After the paren, field 3 (state) is f[0]; utime=14, stime=15, starttime=22,
  // vsize=23, rss=24 in proc(5) numbering.
  auto at = [&](int proc_field) {
    return std::stod(f.at(static_cast<std::size_t>(proc_field - 3)));
  };
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  result.cpu_seconds = (at(14) + at(15)) / ticks;
  result.start_time_seconds = boot_time_seconds() + at(22) / ticks;
  result.virtual_bytes = at(23);
  result.resident_bytes = at(24) * static_cast<double>(sysconf(_SC_PAGESIZE));
  return result;
}

double open_fds() {
  double count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(dir))
      if (entry->d_name[0] != '.')
        ++count;
    closedir(dir);
    --count; // the descriptor opendir itself holds
  }
  return count;
}

} // namespace

void register_process_metrics(registry& reg) {
  auto& cpu = reg.add_counter("process_cpu_seconds_total",
                              "Total user and system CPU time spent in seconds.")
                  .with({});
  auto& resident =
      reg.add_gauge("process_resident_memory_bytes", "Resident memory size in bytes.").with({});
  auto& virt =
      reg.add_gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.").with({});
  auto& fds = reg.add_gauge("process_open_fds", "Number of open file descriptors.").with({});
  auto& max_fds =
      reg.add_gauge("process_max_fds", "Maximum number of open file descriptors.").with({});
  auto& start = reg.add_gauge("process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.")
                    .with({});
  reg.add_collector([&cpu, &resident, &virt, &fds, &max_fds, &start] {
    try {
      auto stat = read_proc_stat();
      cpu.follow_total(stat.cpu_seconds);
      resident.set(stat.resident_bytes);
      virt.set(stat.virtual_bytes);
      start.set(stat.start_time_seconds);
    } catch (const std::exception&) {
      // /proc unreadable or in an unexpected format: leave the last values.
    }
    fds.set(open_fds());
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0)
      max_fds.set(static_cast<double>(limit.rlim_cur));
  });
}

double peak_resident_bytes() {
  try {
    return status_field_bytes("VmHWM");
  } catch (const std::exception&) {
    return 0;
  }
}

} // namespace dcmstreams::metrics
