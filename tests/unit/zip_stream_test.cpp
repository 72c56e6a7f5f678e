// The ZIP download stream on its own: a client that owns the stream (as the
// HTTP session does) may let go of it from the pool thread that wrote it.

#include "web/zip_stream.hpp"

#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>

using namespace dcmstreams;
using namespace std::chrono_literals;

namespace {

// Pulls until the end, as the session does; the last piece drops the only
// reference to the stream, on whichever thread delivers it.
struct client : std::enable_shared_from_this<client> {
  std::shared_ptr<web::zip_stream> stream;
  std::size_t bytes = 0;
  std::promise<std::size_t> done;

  void pull() {
    stream->pull([self = shared_from_this()](std::optional<std::string> piece) {
      if (!piece) {
        self->stream.reset(); // the last reference: ~zip_stream runs here
        self->done.set_value(self->bytes);
        return;
      }
      self->bytes += piece->size();
      self->pull();
    });
  }
};

} // namespace

TEST(zip_stream, the_client_may_drop_the_last_reference_on_the_streams_own_thread) {
  fixtures::temp_dir dir;
  web::work_pool pool{"zip", 2, 4};
  for (int i = 0; i < 20; ++i)
    fixtures::write_file(dir / ("file" + std::to_string(i)), std::string(300 << 10, 'x'));
  // Many times: which thread ends the stream depends on timing.
  for (int round = 0; round < 30; ++round) {
    auto reader = std::make_shared<client>();
    reader->stream = std::make_shared<web::zip_stream>(dir.path(), "job-1-OUTPUT", pool);
    auto finished = reader->done.get_future();
    reader->pull();
    ASSERT_EQ(finished.wait_for(20s), std::future_status::ready) << "round " << round;
    EXPECT_GT(finished.get(), 20u * (300u << 10)) << "round " << round;
  }
}

namespace {

std::size_t threads_of_this_process() {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& entry : std::filesystem::directory_iterator("/proc/self/task"))
    ++n;
  return n;
}

} // namespace

TEST(zip_stream, downloads_hold_no_thread_of_their_own_and_share_the_bounded_pool) {
  fixtures::temp_dir dir;
  for (int i = 0; i < 6; ++i)
    fixtures::write_file(dir / ("file" + std::to_string(i)), std::string(700 << 10, 'a' + i));
  // One thread and a queue of one: eight downloads at once still all finish,
  // each one step at a time, and none starts a thread.
  web::work_pool pool{"zip", 1, 1};
  auto before = threads_of_this_process();
  std::vector<std::shared_ptr<client>> readers;
  std::vector<std::future<std::size_t>> finished;
  for (int i = 0; i < 8; ++i) {
    auto reader = std::make_shared<client>();
    reader->stream = std::make_shared<web::zip_stream>(dir.path(), "job-1-OUTPUT", pool);
    finished.push_back(reader->done.get_future());
    readers.push_back(reader);
  }
  for (auto& reader : readers)
    reader->pull();
  EXPECT_EQ(threads_of_this_process(), before);
  for (auto& f : finished) {
    ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
    // Stored entries: the files' bytes plus headers and the central directory.
    auto bytes = f.get();
    EXPECT_GT(bytes, 6u * (700u << 10));
    EXPECT_LT(bytes, 6u * (700u << 10) + 4096);
  }
}
