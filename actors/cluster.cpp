#include "actors/cluster.hpp"

#include <caf/io/all.hpp>

#include <cstdlib>

namespace dcmstreams {

std::string wire_version() {
  auto* hooks = std::getenv("DCMSTREAMS_TEST_HOOKS");
  auto* other = std::getenv("DCMSTREAMS_TEST_WIRE_VERSION");
  if (hooks && std::string{hooks} == "1" && other && *other)
    return other;
  return cluster_wire_version;
}

void configure_cluster(caf::actor_system_config& config) {
  config.load<caf::io::middleman>();
  config.set("middleman.app-identifiers", std::vector<std::string>{wire_version()});
  config.add_message_type<worker_info>("dcmstreams::worker_info");
  config.add_message_type<worker_status>("dcmstreams::worker_status");
  config.add_message_type<std::vector<worker_status>>("std::vector<dcmstreams::worker_status>");
  config.add_message_type<remote_job>("dcmstreams::remote_job");
  config.add_message_type<job_outcome>("dcmstreams::job_outcome");
  config.add_message_type<std::vector<transfer_file>>("std::vector<dcmstreams::transfer_file>");
}

result<std::uint16_t> publish_cluster_head(caf::actor_system& system,
                                           const cluster_head_actor& head,
                                           const cluster_config& cluster) {
  auto port = system.middleman().publish(head, cluster.port, cluster.bind.c_str(), true);
  if (!port)
    return failure{ec::network_error, "cannot open the cluster port " + cluster.bind + ":" +
                                          std::to_string(cluster.port) + ": " +
                                          system.render(port.error()) +
                                          "; another program may listen there: set cluster.port"};
  return *port;
}

result<cluster_head_actor> connect_to_head(caf::actor_system& system, const std::string& host,
                                           std::uint16_t port) {
  auto where = host + ":" + std::to_string(port);
  auto head = system.middleman().remote_actor<cluster_head_actor>(host, port);
  if (!head)
    return failure{ec::network_error,
                   "cannot join the head at " + where + ": " + system.render(head.error()) +
                       " (is `dcmstreams serve` running there with cluster.port " +
                       std::to_string(port) +
                       "? a head of another version, whose wire version "
                       "is not " +
                       wire_version() + ", refuses this worker too)"};
  return *head;
}

} // namespace dcmstreams
