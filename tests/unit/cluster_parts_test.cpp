// The parts of running jobs on workers that need no process: moving files
// in chunks with a bounded window (docs/cluster.md) and choosing a slot.

#include "actors/slot_table.hpp"
#include "pipeline/execution/file_transfer.hpp"

#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <random>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
namespace fs = std::filesystem;

namespace {

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 random{seed};
  std::string bytes(size, '\0');
  for (auto& c : bytes)
    c = static_cast<char>(random());
  return bytes;
}

/// Moves every file of `from` into `to` as head and worker do, with the
/// reader answering each request in order; returns the largest number of
/// chunks that were outstanding at once.
std::size_t move_files(const fs::path& from, const fs::path& to, std::size_t window) {
  auto files = list_transfer_files(from);
  EXPECT_TRUE(files) << files.error().message;
  chunk_reader reader{from, *files};
  chunk_writer writer{to, *files, window};
  EXPECT_FALSE(writer.open());
  std::vector<chunk_request> in_flight;
  std::size_t most = 0;
  while (!writer.complete()) {
    while (auto next = writer.next())
      in_flight.push_back(*next);
    most = std::max(most, in_flight.size());
    EXPECT_FALSE(in_flight.empty()) << "nothing asked for, yet not complete";
    if (in_flight.empty())
      break;
    auto request = in_flight.front();
    in_flight.erase(in_flight.begin());
    auto data = reader.read(request.file, request.offset);
    EXPECT_TRUE(data) << data.error().message;
    EXPECT_FALSE(writer.accept(request.file, request.offset, *data));
  }
  return most;
}

} // namespace

TEST(file_transfer, files_of_every_size_arrive_whole_with_no_more_than_the_window_in_flight) {
  temp_dir from, to;
  auto big = random_bytes(3 * transfer_chunk_bytes + 12345, 1);
  auto exact = random_bytes(transfer_chunk_bytes, 2);
  write_file(from / "OUTPUT" / "series1" / "big.dcm", big);
  write_file(from / "OUTPUT" / "exact.dcm", exact);
  write_file(from / "OUTPUT" / "empty", "");
  write_file(from / "processing.log", "a line\n");
  fs::create_symlink("/etc/passwd", from / "OUTPUT" / "link");
  EXPECT_EQ(move_files(from.path(), to.path(), 3), 3u);
  EXPECT_EQ(read_file(to / "OUTPUT" / "series1" / "big.dcm"), big);
  EXPECT_EQ(read_file(to / "OUTPUT" / "exact.dcm"), exact);
  EXPECT_TRUE(fs::exists(to / "OUTPUT" / "empty"));
  EXPECT_EQ(fs::file_size(to / "OUTPUT" / "empty"), 0u);
  EXPECT_EQ(read_file(to / "processing.log"), "a line\n");
  EXPECT_FALSE(fs::exists(to / "OUTPUT" / "link"))
      << "symbolic links are neither followed nor sent";
}

TEST(file_transfer, names_that_would_leave_the_folder_are_refused_before_anything_is_written) {
  temp_dir to;
  for (auto name : {"../escape", "/etc/passwd", "a/../../b", "a//b", "./a", ""}) {
    chunk_writer writer{to / "in", {{"ok", 1}, {name, 1}}};
    auto problem = writer.open();
    ASSERT_TRUE(problem) << name;
    EXPECT_NE(problem->message.find("would leave the folder"), std::string::npos)
        << problem->message;
  }
  EXPECT_FALSE(fs::exists(to / "in")) << "not even the good name";
  EXPECT_TRUE(safe_relative_path("OUTPUT/series1/00001.dcm"));
}

TEST(file_transfer, a_chunk_that_was_not_asked_for_is_refused) {
  temp_dir to;
  chunk_writer writer{to.path(), {{"a", 10}}};
  ASSERT_FALSE(writer.open());
  EXPECT_TRUE(writer.accept(0, 0, std::vector<char>(10, 'x'))) << "nothing was asked for yet";
  auto next = writer.next();
  ASSERT_TRUE(next);
  EXPECT_TRUE(writer.accept(0, 0, std::vector<char>(11, 'x'))) << "longer than the file";
  EXPECT_TRUE(writer.accept(1, 0, std::vector<char>(10, 'x'))) << "no such file";
  EXPECT_FALSE(writer.accept(0, 0, std::vector<char>(10, 'x')));
  EXPECT_TRUE(writer.complete());
}

TEST(file_transfer, a_file_that_shrank_since_it_was_listed_is_a_clear_error) {
  temp_dir from;
  write_file(from / "a", std::string(100, 'x'));
  chunk_reader reader{from.path(), {{"a", 200}}};
  auto data = reader.read(0, 0);
  ASSERT_FALSE(data);
  EXPECT_NE(data.error().message.find("became shorter"), std::string::npos) << data.error().message;
}

TEST(slot_table, the_least_loaded_slot_is_taken_and_work_spreads_over_equal_workers) {
  slot_table slots{1};
  slots.joined("w1", {}, 2);
  slots.joined("w2", {}, 2);
  auto first = slots.take(false);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->worker, "") << "the head, on a tie";
  auto second = slots.take(false), third = slots.take(false);
  ASSERT_TRUE(second && third);
  EXPECT_NE(second->worker, third->worker) << "equal workers take turns";
  EXPECT_FALSE(second->worker.empty());
  auto fourth = slots.take(false), fifth = slots.take(false);
  ASSERT_TRUE(fourth && fifth);
  EXPECT_FALSE(slots.take(false)) << "every slot taken";
  slots.release(*first);
  auto again = slots.take(false);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->worker, "");
  EXPECT_NE(again->attempt, first->attempt);
}

TEST(slot_table, one_waiting_for_a_slot_is_woken_once_when_a_slot_frees_or_a_worker_comes) {
  slot_table slots{0};
  int wakes = 0;
  auto wake = [&wakes] { ++wakes; };
  EXPECT_FALSE(slots.take_or_wait(false, wake));
  EXPECT_EQ(wakes, 0);
  slots.joined("w1", {}, 1);
  EXPECT_EQ(wakes, 1) << "a worker joined";
  auto run = slots.take_or_wait(false, wake);
  ASSERT_TRUE(run);
  EXPECT_FALSE(slots.take_or_wait(false, wake));
  slots.release(*run);
  EXPECT_EQ(wakes, 2) << "the slot was given back";
  slots.release(*run);
  EXPECT_EQ(wakes, 2) << "a waiter is woken once, not kept";
  auto next = slots.take_or_wait(false, wake);
  ASSERT_TRUE(next);
  EXPECT_FALSE(slots.take_or_wait(false, wake));
  slots.lost("w1");
  EXPECT_EQ(wakes, 2) << "losing a worker frees nothing to run on";
  slots.back("w1");
  EXPECT_EQ(wakes, 3) << "the worker is back";
}

TEST(slot_table, a_lost_worker_s_runs_are_given_up_and_its_slots_come_back_with_it) {
  slot_table slots{0};
  EXPECT_FALSE(slots.any_slots());
  EXPECT_FALSE(slots.take(false)) << "head_slots 0 and no worker";
  auto on_the_head = slots.take(true);
  ASSERT_TRUE(on_the_head) << "a job only the head can run runs there anyway";
  slots.joined("w1", {}, 1);
  auto run = slots.take(false);
  ASSERT_TRUE(run);
  EXPECT_TRUE(slots.alive(*run));
  slots.lost("w1");
  EXPECT_FALSE(slots.alive(*run));
  EXPECT_FALSE(slots.take(false));
  slots.back("w1");
  EXPECT_FALSE(slots.alive(*run)) << "a run given up stays given up";
  auto next = slots.take(false);
  ASSERT_TRUE(next) << "the lost run's slot is free again";
  slots.release(*run); // the given-up run ends late: it frees nothing
  EXPECT_FALSE(slots.take(false));
  slots.release(*next);
  EXPECT_TRUE(slots.take(false));
  slots.joined("w1", {}, 1); // a new connection: runs of the old one are stale
  EXPECT_FALSE(slots.alive(*next));
}
