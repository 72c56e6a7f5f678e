#include "pipeline/jobs/ingest.hpp"

namespace dcmstreams {

const char* to_string(association_end end) {
  switch (end) {
  case association_end::released:
    return "released";
  case association_end::aborted_by_peer:
    return "aborted_by_peer";
  case association_end::aborted_by_node:
    return "aborted_by_node";
  case association_end::failed:
    return "failed";
  }
  return "?";
}

} // namespace dcmstreams
