#pragma once
// What keeps the node from doing its work, by where it comes from ("streams",
// "routing"): set by the parts that find it, read by /readyz and the status
// page. Thread-safe; plain C++ so that any layer may hold it.

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace dcmstreams {

class readiness_board {
public:
  /// Replaces the problems of one source (none: it is fine).
  void set(const std::string& source, std::vector<std::string> problems);
  /// Every problem, by source name.
  std::vector<std::string> problems() const;

private:
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<std::string>> by_source_;
};

} // namespace dcmstreams
