#include "net/echo_scu.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/scu.h>

namespace dcmstreams::net {

echo_result echo(const std::string& host, std::uint16_t port, const std::string& calling_ae,
                 const std::string& called_ae, int timeout_s) {
  ::setenv("TCP_NODELAY", "1", 0);
  DcmSCU scu;
  scu.setAETitle(calling_ae.c_str());
  scu.setPeerHostName(host.c_str());
  scu.setPeerPort(port);
  scu.setPeerAETitle(called_ae.c_str());
  scu.setACSETimeout(static_cast<Uint32>(timeout_s));
  scu.setConnectionTimeout(timeout_s);
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  scu.setDIMSETimeout(static_cast<Uint32>(timeout_s));
  OFList<OFString> syntaxes;
  syntaxes.push_back(UID_LittleEndianImplicitTransferSyntax);
  scu.addPresentationContext(UID_VerificationSOPClass, syntaxes);
  auto where = called_ae + "@" + host + ":" + std::to_string(port);
  try {
    OFCondition cond = scu.initNetwork();
    if (cond.bad())
      return {echo_answer::silent, std::string("cannot set up networking: ") + cond.text()};
    cond = scu.negotiateAssociation();
    if (cond == DUL_ASSOCIATIONREJECTED)
      return {echo_answer::rejected, where + " rejected the association"};
    if (cond.bad())
      return {echo_answer::silent, "no association with " + where + ": " + cond.text()};
    cond = scu.sendECHORequest(0);
    scu.releaseAssociation();
    if (cond.bad())
      return {echo_answer::silent, "no C-ECHO response from " + where + ": " + cond.text()};
  } catch (const std::exception& e) {
    return {echo_answer::silent, "C-ECHO to " + where + " failed: " + e.what()};
  }
  return {echo_answer::echoed, {}};
}

} // namespace dcmstreams::net
