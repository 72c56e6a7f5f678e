#include "pipeline/foundation/readiness.hpp"

namespace dcmstreams {

void readiness_board::set(const std::string& source, std::vector<std::string> problems) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (problems.empty())
    by_source_.erase(source);
  else
    by_source_[source] = std::move(problems);
}

std::vector<std::string> readiness_board::problems() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<std::string> all;
  for (auto& [source, problems] : by_source_)
    all.insert(all.end(), problems.begin(), problems.end());
  return all;
}

} // namespace dcmstreams
