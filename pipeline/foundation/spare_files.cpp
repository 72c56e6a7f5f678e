#include "pipeline/foundation/spare_files.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace dcmstreams {

spare_file_pool::spare_file_pool(std::filesystem::path dir, std::string name, std::size_t target,
                                 bool keep_open, int refill_niceness)
    : dir_(std::move(dir)), name_(std::move(name)), target_(target), keep_open_(keep_open),
      refill_niceness_(refill_niceness), refiller_([this] { refill(); }) {}

spare_file_pool::~spare_file_pool() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    stopping_ = true;
  }
  wanted_.notify_all();
  refiller_.join();
  for (auto& spare : ready_) {
    if (spare.fd >= 0)
      ::close(spare.fd);
    ::unlink(spare.path.c_str());
  }
}

spare_file spare_file_pool::create() {
  spare_file spare;
  // A name left by an earlier process with the same pid is skipped.
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::uint64_t number;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      number = sequence_++;
    }
    spare.path =
        dir_ / (name_ + "-" + std::to_string(::getpid()) + "-" + std::to_string(number) + ".part");
    spare.fd = ::open(spare.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (spare.fd >= 0 || errno != EEXIST)
      break;
  }
  if (spare.fd < 0)
    spare.error = errno;
  else if (!keep_open_) {
    ::close(spare.fd);
    spare.fd = -1;
  }
  return spare;
}

spare_file spare_file_pool::take() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (!ready_.empty()) {
      auto spare = std::move(ready_.front());
      ready_.pop_front();
      wanted_.notify_one();
      return spare;
    }
  }
  wanted_.notify_one();
  return create();
}

void spare_file_pool::refill() {
  if (refill_niceness_ != 0)
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), refill_niceness_);
  std::unique_lock<std::mutex> lock{mutex_};
  for (;;) {
    wanted_.wait(lock, [&] { return stopping_ || ready_.size() < target_; });
    if (stopping_)
      return;
    lock.unlock();
    auto spare = create();
    lock.lock();
    if (spare.error != 0) {
      // The disk refuses (full, read-only): let the path taking files report it.
      wanted_.wait_for(lock, std::chrono::seconds(1));
      continue;
    }
    ready_.push_back(std::move(spare));
  }
}

} // namespace dcmstreams
