// The ingest journal against a real folder: what is appended and flushed is
// found again after a reopen (a restart), byte for byte; what a job consumed
// is not; a record cut off mid-write ends the scan; recycled segments never
// bring old records back.

#include "pipeline/jobs/journal.hpp"

#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

using namespace dcmstreams;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t small_segment = 64 << 10;

std::unique_ptr<journal> open_journal(const fs::path& dir, std::uint64_t segment_bytes = 1 << 20) {
  journal_settings settings;
  settings.dir = dir;
  settings.segment_bytes = segment_bytes;
  auto opened = journal::open(settings);
  EXPECT_TRUE(opened) << opened.error().message;
  return opened ? std::move(*opened) : nullptr;
}

journal_origin origin_of(int n) {
  return {"CT", "MODALITY", "10.0.0.5", "1.2.3", "1.2.3.4." + std::to_string(n)};
}

std::string data_of(int n, std::size_t size = 3000) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    data[i] = static_cast<char>((n * 131 + i * 7) & 0xFF);
  return data;
}

journal_ref append_durably(journal& j, int n, std::size_t size = 3000) {
  auto ticket = j.append_instance(origin_of(n), data_of(n, size));
  EXPECT_TRUE(ticket) << ticket.error().message;
  EXPECT_FALSE(j.wait_durable(*ticket));
  return ticket->ref;
}

std::vector<fs::path> segment_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".log")
      files.push_back(entry.path());
  return files;
}

} // namespace

TEST(journal, appended_instances_are_found_byte_for_byte_after_a_reopen) {
  fixtures::temp_dir dir;
  {
    auto j = open_journal(dir.path());
    for (int n = 0; n < 20; ++n)
      append_durably(*j, n, 1000 + 97 * n);
  }
  auto j = open_journal(dir.path());
  EXPECT_FALSE(j->created());
  auto pending = j->pending_instances();
  ASSERT_EQ(pending.size(), 20u);
  for (int n = 0; n < 20; ++n) {
    auto& found = pending[static_cast<std::size_t>(n)];
    EXPECT_EQ(found.origin.sop_uid, origin_of(n).sop_uid) << "oldest first";
    EXPECT_EQ(found.origin.called_ae, "CT");
    EXPECT_EQ(found.origin.calling_ae, "MODALITY");
    EXPECT_EQ(found.origin.peer, "10.0.0.5");
    EXPECT_EQ(found.origin.study_uid, "1.2.3");
    EXPECT_EQ(found.bytes, 1000u + 97u * static_cast<unsigned>(n));
    auto data = j->read_instance(found.ref);
    ASSERT_TRUE(data) << data.error().message;
    EXPECT_EQ(*data, data_of(n, found.bytes));
  }
}

TEST(journal, one_flush_serves_many_associations_waiting_together) {
  fixtures::temp_dir dir;
  constexpr int threads = 8, per_thread = 100;
  {
    auto j = open_journal(dir.path(), 4 << 20);
    std::vector<std::thread> writers;
    for (int t = 0; t < threads; ++t)
      writers.emplace_back([&j, t] {
        for (int i = 0; i < per_thread; ++i)
          append_durably(*j, t * per_thread + i, 8192);
      });
    for (auto& w : writers)
      w.join();
    auto usage = j->current_usage();
    EXPECT_EQ(usage.appended, std::uint64_t{threads * per_thread});
    EXPECT_LT(usage.flushes, usage.appended) << "waiters share flushes";
    EXPECT_GT(usage.segments, 1u) << "800 records of 8 KiB fill more than one 4 MiB segment";
  }
  auto j = open_journal(dir.path(), 4 << 20);
  auto pending = j->pending_instances();
  ASSERT_EQ(pending.size(), std::size_t{threads * per_thread});
  std::set<std::string> sops;
  for (auto& found : pending) {
    sops.insert(found.origin.sop_uid);
    auto n = std::stoi(found.origin.sop_uid.substr(found.origin.sop_uid.rfind('.') + 1));
    auto data = j->read_instance(found.ref);
    ASSERT_TRUE(data);
    EXPECT_EQ(*data, data_of(n, 8192));
  }
  EXPECT_EQ(sops.size(), pending.size());
}

TEST(journal, a_record_cut_off_mid_write_ends_the_scan_and_is_not_an_instance) {
  fixtures::temp_dir dir;
  journal_ref last;
  {
    auto j = open_journal(dir.path());
    for (int n = 0; n < 5; ++n)
      last = append_durably(*j, n);
  }
  // Damage the last record's data, as a crash in the middle of its write would.
  auto segments = segment_files(dir.path());
  for (auto& file : segments) {
    int fd = ::open(file.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char header[8] = {};
    ASSERT_EQ(::pread(fd, header, sizeof header, 8), 8);
    std::uint64_t sequence = 0;
    std::memcpy(&sequence, header, 8);
    if (sequence == last.sequence) {
      ASSERT_EQ(::pwrite(fd, "garbage", 7, static_cast<off_t>(last.offset + 200)), 7);
    }
    ::close(fd);
  }
  auto j = open_journal(dir.path());
  auto pending = j->pending_instances();
  ASSERT_EQ(pending.size(), 4u);
  EXPECT_EQ(pending.back().origin.sop_uid, origin_of(3).sop_uid);
}

TEST(journal, consumed_records_are_not_pending_after_a_reopen_and_the_consumption_is_listed) {
  fixtures::temp_dir dir;
  journal_ref consumption;
  {
    auto j = open_journal(dir.path());
    std::vector<journal_ref> taken;
    for (int n = 0; n < 6; ++n) {
      auto ref = append_durably(*j, n);
      if (n < 4)
        taken.push_back(ref);
    }
    auto consumed = j->consume({41, 42}, taken, true);
    ASSERT_TRUE(consumed) << consumed.error().message;
    consumption = *consumed;
    EXPECT_EQ(j->pending_instances().size(), 2u);
  }
  auto j = open_journal(dir.path());
  auto pending = j->pending_instances();
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].origin.sop_uid, origin_of(4).sop_uid);
  ASSERT_EQ(j->recovered_consumptions().size(), 1u);
  auto& found = j->recovered_consumptions().front();
  EXPECT_EQ(found.jobs, (std::vector<std::int64_t>{41, 42}));
  EXPECT_EQ(found.consumed.size(), 4u);
  EXPECT_EQ(found.ref, consumption);
}

TEST(journal, released_segments_are_recycled_and_their_old_records_never_come_back) {
  fixtures::temp_dir dir;
  {
    auto j = open_journal(dir.path(), small_segment);
    // 40 records of 3 KB fill two 64 KiB segments and start a third.
    std::vector<journal_ref> first;
    for (int n = 0; n < 40; ++n)
      first.push_back(append_durably(*j, n));
    auto consumed = j->consume({1}, first, true);
    ASSERT_TRUE(consumed);
    first.push_back(*consumed);
    j->release(first);
    auto usage = j->current_usage();
    EXPECT_EQ(usage.segments, 1u) << "all but the segment taking appends are recycled";
    EXPECT_EQ(usage.live_records, 0u);
    // New records go into recycled segments, over the old ones.
    for (int n = 100; n < 130; ++n)
      append_durably(*j, n);
  }
  EXPECT_LE(segment_files(dir.path()).size(), 5u) << "free segments are reused, not piled up";
  auto j = open_journal(dir.path(), small_segment);
  auto pending = j->pending_instances();
  ASSERT_EQ(pending.size(), 30u);
  for (auto& found : pending) {
    auto n = std::stoi(found.origin.sop_uid.substr(found.origin.sop_uid.rfind('.') + 1));
    EXPECT_GE(n, 100) << "a record of an older generation came back";
    auto data = j->read_instance(found.ref);
    ASSERT_TRUE(data);
    EXPECT_EQ(*data, data_of(n));
  }
}

TEST(journal, segments_are_recycled_while_flushes_follow_each_other_without_pause) {
  fixtures::temp_dir dir;
  auto j = open_journal(dir.path(), small_segment);
  // Eight associations append and wait without pause, so a flush is nearly
  // always running; another thread releases what is durable (as job
  // creation does), each segment dying while a flush runs.
  std::mutex mutex;
  std::vector<journal_ref> durable;
  std::atomic<int> writing{8};
  std::vector<std::thread> writers;
  for (int w = 0; w < 8; ++w)
    writers.emplace_back([&, w] {
      for (int n = 0; n < 250; ++n) {
        auto ref = append_durably(*j, w * 1000 + n);
        std::lock_guard lock(mutex);
        durable.push_back(ref);
      }
      --writing;
    });
  std::size_t most_segments = 0;
  while (writing > 0) {
    std::vector<journal_ref> released;
    {
      std::lock_guard lock(mutex);
      released.swap(durable);
    }
    j->release(released);
    most_segments = std::max(most_segments, j->current_usage().segments);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (auto& writer : writers)
    writer.join();
  // 2,000 records of 3 KB fill about 95 segments of 64 KiB; those holding
  // only released records are recycled while the flushes go on.
  EXPECT_LE(most_segments, 5u) << "dead segments piled up behind the flushes";
}

TEST(journal, older_copies_of_an_instance_are_found_by_their_origin_alone) {
  fixtures::temp_dir dir;
  auto mine = origin_of(1);
  auto other_sender = mine;
  other_sender.calling_ae = "OTHER";
  auto append = [](journal& j, const journal_origin& origin) {
    auto ticket = j.append_instance(origin, data_of(1));
    EXPECT_TRUE(ticket);
    EXPECT_FALSE(j.wait_durable(*ticket));
    return ticket->ref;
  };
  journal_ref second;
  {
    auto j = open_journal(dir.path());
    auto first = append(*j, mine);
    append(*j, other_sender);
    append(*j, origin_of(2));
    second = append(*j, mine);
    EXPECT_EQ(j->older_pending_copies(mine, second), std::vector<journal_ref>{first});
    EXPECT_TRUE(j->older_pending_copies(mine, first).empty());
    ASSERT_TRUE(j->consume({1}, {first}, true));
    EXPECT_TRUE(j->older_pending_copies(mine, second).empty()) << "a consumed copy is not pending";
  }
  // After a restart the copies are known from the scan.
  auto j = open_journal(dir.path());
  auto third = append(*j, mine);
  EXPECT_EQ(j->older_pending_copies(mine, third), std::vector<journal_ref>{second});
  EXPECT_EQ(j->older_pending_copies(other_sender, third).size(), 1u);
}

TEST(journal, a_record_larger_than_the_limit_is_refused) {
  fixtures::temp_dir dir;
  auto j = open_journal(dir.path(), small_segment);
  auto ticket = j->append_instance(origin_of(1), std::string(small_segment / 4 + 1, 'x'));
  ASSERT_FALSE(ticket);
  EXPECT_EQ(ticket.error().code, ec::invalid_argument);
  EXPECT_TRUE(j->pending_instances().empty());
}
