#include "actors/cluster.hpp"

#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <cstdlib>

namespace dcmstreams {

std::string wire_version() {
  auto* hooks = std::getenv("DCMSTREAMS_TEST_HOOKS");
  auto* other = std::getenv("DCMSTREAMS_TEST_WIRE_VERSION");
  if (hooks && std::string{hooks} == "1" && other && *other)
    return other;
  return cluster_wire_version;
}

void configure_cluster(caf::actor_system_config& config, const cluster_tls& tls) {
  config.load<caf::io::middleman>();
  if (tls.on()) {
    // Referring to it links the work-around for CAF's error queue in.
    (void)openssl_error_queue_kept_clean();
    config.load<caf::openssl::manager>();
    config.openssl_certificate = tls.certificate.string();
    config.openssl_key = tls.key.string();
    config.openssl_cafile = tls.ca.string();
  }
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
  auto port = cluster.tls.on()
                  ? caf::openssl::publish(head, cluster.port, cluster.bind.c_str(), true)
                  : system.middleman().publish(head, cluster.port, cluster.bind.c_str(), true);
  if (!port)
    return failure{ec::network_error, "cannot open the cluster port " + cluster.bind + ":" +
                                          std::to_string(cluster.port) + ": " +
                                          system.render(port.error()) +
                                          "; another program may listen there: set cluster.port"};
  return *port;
}

result<cluster_head_actor> connect_to_head(caf::actor_system& system, const std::string& host,
                                           std::uint16_t port, bool tls) {
  auto where = host + ":" + std::to_string(port);
  auto head = tls ? caf::openssl::remote_actor<cluster_head_actor>(system, host, port)
                  : system.middleman().remote_actor<cluster_head_actor>(host, port);
  if (!head)
    return failure{ec::network_error,
                   "cannot join the head at " + where + ": " + system.render(head.error()) +
                       " (is `dcmstreams serve` running there with cluster.port " +
                       std::to_string(port) +
                       "? a head of another version, whose wire version "
                       "is not " +
                       wire_version() + ", refuses this worker too" +
                       (tls ? "; with TLS, the head must show a certificate of this worker's "
                              "--ca and accept this worker's, signed by the same cluster CA"
                            : "; a head with cluster.tls refuses a worker without --certificate") +
                       ")"};
  return *head;
}

} // namespace dcmstreams
