#include "net/instance_committer.hpp"

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"

#include <cerrno>
#include <cstdio>

namespace dcmstreams::net {

namespace {
constexpr const char* component = "listener";
} // namespace

void instance_committer::attach() {
  if (config_.ingest_journal)
    config_.ingest_journal->attach(writer_);
}

void instance_committer::detach() {
  if (config_.ingest_journal)
    config_.ingest_journal->detach(writer_);
}

status instance_committer::commit_record(stored_instance& stored, std::string_view data_set) {
  auto& journal = *config_.ingest_journal;
  auto ticket = journal.append_instance(
      {stored.called_ae, stored.calling_ae, stored.peer, stored.study_uid, stored.sop_uid},
      data_set);
  if (!ticket)
    return ticket.error();
  switch (config_.sync) {
  case sync_mode::instance:
    if (auto problem = journal.wait_durable(*ticket, &writer_)) {
      journal.release({ticket->ref});
      return problem;
    }
    break;
  case sync_mode::association:
    unsynced_record_ = *ticket; // the last one: waiting for it waits for all before
    break;
  case sync_mode::none:
    break;
  }
  stored.record = ticket->ref;
  return std::nullopt;
}

status instance_committer::commit_file(const std::filesystem::path& temporary,
                                       stored_instance& stored) {
  auto& config = config_;
  bool durable = config.sync == sync_mode::instance;
  auto dir = layout_.incoming_study_dir(stored.called_ae, stored.calling_ae, stored.peer,
                                        stored.study_uid);
  if (dir.native() != known_dir_) {
    if (auto problem = create_directories(dir, durable))
      return problem;
    known_dir_ = dir.native();
  }
  auto final_path = dir / (stored.sop_uid + ".dcm");
  if (::rename(temporary.c_str(), final_path.c_str()) != 0)
    return failure{ec::io_error, "cannot move the instance into place: " + errno_text(errno)};
  if (durable) {
    if (auto problem = sync_directory(dir))
      return problem;
  } else if (config_.sync == sync_mode::association) {
    unsynced_files_.push_back(final_path.native());
    unsynced_dirs_.insert(dir.native());
  }
  stored.path = final_path.native();
  return std::nullopt;
}

void instance_committer::sync_association_writes() {
  if (unsynced_record_.ref) {
    if (auto problem = config_.ingest_journal->wait_durable(unsynced_record_, &writer_))
      log::error(component, problem->message);
    unsynced_record_ = {};
  }
  for (auto& file : unsynced_files_)
    if (auto problem = sync_file(file))
      log::error(component, problem->message);
  for (auto& dir : unsynced_dirs_)
    if (auto problem = sync_directory(dir))
      log::error(component, problem->message);
  unsynced_files_.clear();
  unsynced_dirs_.clear();
}

} // namespace dcmstreams::net
