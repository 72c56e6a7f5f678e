#include "actors/actors.hpp"

namespace dcmstreams {

caf::error make_error(ec code) {
  return caf::error{static_cast<std::uint8_t>(code), error_category};
}

caf::error make_error(ec code, std::string message) {
  return caf::error{static_cast<std::uint8_t>(code), error_category,
                    caf::make_message(std::move(message))};
}

caf::error make_error(const failure& problem) {
  return make_error(problem.code, problem.message);
}

ec code_of(const caf::error& error) {
  if (!error || error.category() != error_category)
    return ec::unspecified;
  return static_cast<ec>(error.code());
}

void crash_for_test(const caf::strong_actor_ptr& actor, const std::string& why) {
  if (actor)
    actor->enqueue(
        nullptr, caf::make_message_id(),
        caf::make_message(caf::exit_msg{actor->address(), make_error(ec::unspecified, why)}),
        nullptr);
}

std::string describe(const caf::error& error) {
  if (!error)
    return "no error";
  if (error.category() == error_category) {
    auto& context = error.context();
    if (context.match_elements<std::string>())
      return context.get_as<std::string>(0);
    return to_string(static_cast<ec>(error.code()));
  }
  return caf::to_string(error);
}

} // namespace dcmstreams
