#include "pipeline/dicom/dcmtk_log.hpp"

#include "pipeline/foundation/log.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/oflog/appender.h>
#include <dcmtk/oflog/logger.h>
#include <dcmtk/oflog/oflog.h>
#include <dcmtk/oflog/spi/logevent.h>

#include <string>

namespace dcmstreams {

namespace {

namespace log4cplus = dcmtk::log4cplus;

class node_log_appender : public log4cplus::Appender {
public:
  ~node_log_appender() override { destructorImpl(); }
  void close() override {}

protected:
  void append(const log4cplus::spi::InternalLoggingEvent& event) override {
    // DCMTK writes some messages over several lines; the node's log has one
    // line per event.
    std::string message = event.getMessage().c_str();
    for (auto at = message.find('\n'); at != std::string::npos; at = message.find('\n', at))
      message.replace(at, 1, "; ");
    auto level =
        event.getLogLevel() >= log4cplus::ERROR_LOG_LEVEL ? log::level::warning : log::level::info;
    // Which DCMTK module spoke (dcmtk.dcmnet, dcmtk.dcmdata ...).
    std::string module = event.getLoggerName().c_str();
    if (module.rfind("dcmtk.", 0) == 0)
      module.erase(0, 6);
    log::write(level, "dcmtk", module.empty() ? message : module + ": " + message);
  }
};

} // namespace

void route_dcmtk_log_to_node_log() {
  OFLog::configure(OFLogger::WARN_LOG_LEVEL);
  auto root = log4cplus::Logger::getRoot();
  root.removeAllAppenders();
  root.addAppender(log4cplus::SharedAppenderPtr(new node_log_appender));
}

} // namespace dcmstreams
