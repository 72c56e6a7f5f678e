#include "streams/stream.hpp"

#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/http_url.hpp"
#include "pipeline/foundation/json.hpp"

#include <unistd.h>

#include <algorithm>
#include <regex>

namespace dcmstreams::streams {

namespace fs = std::filesystem;

const std::vector<std::string>& known_kernels() {
  static const std::vector<std::string> kernels{"gaussian", "median",   "threshold", "window",
                                                "mip",      "resample", "stats",     "deidentify"};
  return kernels;
}

namespace {

void read_pipeline(json::object_reader& reader, stream_definition& stream) {
  auto steps = reader.get_array("pipeline");
  if (!steps)
    return;
  std::size_t index = 0;
  for (auto& element : *steps) {
    std::string path = "pipeline[" + std::to_string(index++) + "]";
    if (!element.is_object()) {
      reader.sink().add(path, "must be an object such as {\"kernel\": \"gaussian\", "
                              "\"sigma_mm\": 1.0}, not " +
                                  json::describe_type(element));
      continue;
    }
    auto step = read_kernel_step(element, path);
    if (!step) {
      // Each line of the message is one problem, already naming its key.
      std::string message = step.error().message;
      std::size_t start = 0;
      while (start < message.size()) {
        auto end = message.find('\n', start);
        reader.sink().add("", message.substr(start, end - start));
        start = end == std::string::npos ? message.size() : end + 1;
      }
      continue;
    }
    stream.pipeline.push_back(std::move(*step));
  }
  if (index == 0)
    reader.sink().add("pipeline", "must list at least one step");
}

void read_accept(json::object_reader& reader, stream_definition& stream) {
  auto filters = reader.get_object("accept");
  if (!filters)
    return;
  for (auto& [attribute, pattern] : filters->items()) {
    std::string path = "accept." + attribute;
    if (!pattern.is_string()) {
      reader.sink().add(path, "must be a regular expression in a string, such as \"CT|MR\"");
      continue;
    }
    attribute_match term{attribute, pattern.get<std::string>()};
    if (auto compiled = attribute_filter::compile({term}); !compiled) {
      reader.sink().add(path, compiled.error().message);
      continue;
    }
    stream.accept.push_back(std::move(term));
  }
}

void read_complete_when(json::object_reader& reader, stream_definition& stream) {
  if (!reader.has("complete_when"))
    return;
  reader.with_object("complete_when", [&](json::object_reader& sub) {
    sub.reject_unknown_keys({"series", "modality", "series_description", "min_instances"});
    completion_rule rule;
    if (auto series = sub.get_integer("series", 1, 10000))
      rule.series = static_cast<int>(*series);
    if (auto minimum = sub.get_integer("min_instances", 0, 100000000))
      rule.min_instances = *minimum;
    for (auto [key, pattern] : {std::pair{"modality", &rule.modality},
                                std::pair{"series_description", &rule.series_description}}) {
      auto text = sub.get_string(key);
      if (!text)
        continue;
      try {
        std::regex check{*text, std::regex::icase};
        *pattern = *text;
      } catch (const std::regex_error& e) {
        sub.sink().add(sub.path_of(key),
                       "\"" + *text + "\" is not a regular expression: " + e.what());
      }
    }
    stream.complete_when = rule;
  });
}

void read_notify(json::object_reader& reader, stream_definition& stream) {
  auto targets = reader.get_array("notify");
  if (!targets)
    return;
  for (std::size_t i = 0; i < targets->size(); ++i) {
    auto where = "notify[" + std::to_string(i) + "]";
    auto& entry = (*targets)[i];
    if (!entry.is_object()) {
      reader.sink().add(where, "must be {\"url\": \"http://...\", \"on\": [\"failed\"]}");
      continue;
    }
    json::object_reader target{entry, reader.path_of(where), reader.sink()};
    target.reject_unknown_keys({"url", "on", "ca"});
    notify_target notify;
    if (auto url = target.get_string("url")) {
      if (auto parsed = parse_http_url(*url); !parsed)
        target.sink().add(target.path_of("url"), parsed.error().message);
      else
        notify.url = *url;
    } else {
      target.sink().add(target.path_of("url"), "is required: where to POST the job");
    }
    if (auto ca = target.get_string("ca")) {
      std::error_code error;
      if (notify.url.rfind("https://", 0) != 0)
        target.sink().add(target.path_of("ca"), "is for https:// URLs only");
      else if (!fs::is_regular_file(*ca, error))
        target.sink().add(target.path_of("ca"),
                          "\"" + *ca +
                              "\" is not a file; give the PEM file of the "
                              "authority that signed the server's certificate");
      else
        notify.ca = *ca;
    }
    notify.on = target.get_string_list("on").value_or(std::vector<std::string>{"failed"});
    for (auto& state : notify.on)
      if (state != "success" && state != "failed" && state != "cancelled")
        target.sink().add(target.path_of("on"), "lists \"" + state +
                                                    "\"; a job ends as \"success\", "
                                                    "\"failed\" or \"cancelled\"");
    if (!notify.url.empty())
      stream.notify.push_back(std::move(notify));
  }
}

} // namespace

result<stream_definition> load_stream(const fs::path& folder) {
  auto text = read_text_file(folder / "info.json");
  if (!text)
    return text.error();
  return parse_stream(*text, folder);
}

result<stream_definition> parse_stream(std::string_view text, const fs::path& folder) {
  auto file = folder / "info.json";
  auto root = json::parse(text, file.string());
  if (!root)
    return root.error();
  if (!root->is_object())
    return failure{ec::invalid_config,
                   file.string() + ": must be a JSON object with at least \"AETitle\""};
  json::problems problems{file.string(), {}};
  json::object_reader reader{*root, "", problems};
  stream_definition stream;
  // Absolute, because jobs run in their own folders, not here.
  std::error_code absolute_error;
  stream.folder = fs::absolute(folder, absolute_error).lexically_normal();
  stream.folder_name = folder.filename().string();

  // Unknown keys do not stop an old appliance's folder from loading.
  json::problems unknown{file.string(), {}};
  json::object_reader{*root, "", unknown}.reject_unknown_keys(
      {"name", "description", "version", "AETitle", "enabled", "license", "command", "pipeline",
       "concurrency", "timeout_s", "log_limit_mb", "quiet_period_s", "complete_on", "group_by",
       "accept", "notify", "complete_when", "late"});
  for (auto& note : unknown.messages)
    stream.notes.push_back(note + " (ignored)");

  stream.name = reader.get_string("name").value_or(stream.folder_name);
  stream.description = reader.get_string("description").value_or("");
  if (auto version = reader.get("version")) {
    // The old files wrote versions as strings or as numbers.
    if (version->is_string())
      stream.version = version->get<std::string>();
    else if (version->is_number())
      stream.version = version->dump();
    else
      problems.add("version", "must be a string such as \"1.2\"");
  }
  stream.license = reader.get_string("license").value_or("");
  if (auto title = reader.get_string("AETitle")) {
    if (auto problem = check_ae_title(*title))
      problems.add("AETitle", *problem);
    else
      stream.ae_title = *title;
  } else if (!reader.has("AETitle")) {
    problems.add("AETitle", "is missing: add \"AETitle\": \"<called AE title>\", the AE title "
                            "senders use to reach this stream");
  }
  stream.enabled = reader.get_flag("enabled").value_or(true);

  if (auto command = reader.get_string_list("command")) {
    if (command->empty() || command->front().empty())
      problems.add("command", "must name a program, such as [\"./work.sh\"]");
    else
      stream.command = *command;
  }
  read_pipeline(reader, stream);
  bool has_command = reader.has("command");
  bool has_pipeline = reader.has("pipeline");
  if (has_command && has_pipeline)
    problems.add("", "has both \"command\" and \"pipeline\"; a stream runs exactly one of them");
  if (!has_command && !has_pipeline) {
    // The old appliance ran work.sh from the stream folder.
    auto legacy = stream.folder / "work.sh";
    if (fs::exists(legacy)) {
      stream.command = {legacy.string()};
      stream.notes.push_back(
          file.string() +
          ": no \"command\" or \"pipeline\"; runs work.sh as the old appliance did");
    } else {
      problems.add("", "needs \"command\" (an external program) or \"pipeline\" (built-in "
                       "kernels), or a work.sh in the folder");
    }
  }
  if (!stream.command.empty()) {
    auto program = fs::path(stream.command.front());
    // A relative path with a slash ("./work.sh") is relative to the stream
    // folder, not to the job folder the program runs in; a bare name is
    // looked up in PATH when the job runs.
    if (program.is_relative() && stream.command.front().find('/') != std::string::npos) {
      program = (stream.folder / program).lexically_normal();
      stream.command.front() = program.string();
    }
    if (program.has_parent_path() && ::access(program.c_str(), X_OK) != 0)
      problems.add("command[0]",
                   program.string() + " is not an executable file; create it or chmod +x it");
  }

  if (auto concurrency = reader.get_integer("concurrency", 1, 64))
    stream.concurrency = static_cast<int>(*concurrency);
  if (auto timeout =
          reader.get_number("timeout_s", json::at_least_zero, "0 (no limit) or more seconds"))
    stream.timeout_s = *timeout;
  if (auto limit = reader.get_integer("log_limit_mb", 1, 1 << 20))
    stream.log_limit_mb = static_cast<std::uint64_t>(*limit);
  if (auto quiet =
          reader.get_number("quiet_period_s", quiet_period_accepted, quiet_period_requirement))
    stream.quiet_period_s = *quiet;
  if (auto trigger = reader.get_string("complete_on")) {
    if (*trigger == "release")
      stream.complete_on_release = true;
    else if (*trigger != "quiet")
      problems.add("complete_on", "must be \"quiet\" (after quiet_period_s) or \"release\" (also "
                                  "when the sending association is released), not \"" +
                                      *trigger + "\"");
  }
  if (auto group = reader.get_string("group_by")) {
    if (*group == "study")
      stream.group_by = grouping::study;
    else if (*group == "series")
      stream.group_by = grouping::series;
    else
      problems.add("group_by", "must be \"study\" or \"series\", not \"" + *group + "\"");
  }
  read_accept(reader, stream);
  read_notify(reader, stream);
  read_complete_when(reader, stream);
  if (auto late = reader.get_string("late")) {
    if (*late != "new_job" && *late != "ignore" && *late != "append_and_rerun")
      problems.add("late", "must be \"new_job\", \"ignore\" or \"append_and_rerun\", not \"" +
                               *late + "\"");
    else if (*late != "new_job" && stream.group_by == grouping::series)
      problems.add("late", "works with group_by \"study\" only; a stream that makes a job per "
                           "series makes new jobs of late instances");
    else
      stream.late = *late;
  }
  if (!problems.empty())
    return failure{ec::invalid_config, problems.report()};
  return stream;
}

} // namespace dcmstreams::streams
