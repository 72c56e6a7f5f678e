#include "net/dicom_tls.hpp"

namespace dcmstreams::net {

result<std::unique_ptr<DcmTLSTransportLayer>>
make_tls_layer(const dicom_tls_files& files, T_ASC_NetworkRole role, DcmTLSSecurityProfile profile,
               DcmCertificateVerification verification) {
  auto layer = std::make_unique<DcmTLSTransportLayer>(role, nullptr, OFTrue);
  auto refuse = [](const std::string& why) { return failure{ec::invalid_config, "TLS: " + why}; };
  if (layer->setTLSProfile(profile).bad())
    return refuse("DCMTK refuses the BCP 195 profile (is dcmtls built with OpenSSL?)");
  if (!files.certificate.empty()) {
    if (layer->setPrivateKeyFile(files.key.c_str(), DCF_Filetype_PEM).bad())
      return refuse("cannot load the private key " + files.key +
                    " (PEM, without a password expected)");
    if (layer->setCertificateFile(files.certificate.c_str(), DCF_Filetype_PEM).bad())
      return refuse("cannot load the certificate " + files.certificate + " (PEM expected)");
    if (!layer->checkPrivateKeyMatchesCertificate())
      return refuse("the key " + files.key + " does not belong to the certificate " +
                    files.certificate);
  }
  if (!files.ca.empty() &&
      layer->addTrustedCertificateFile(files.ca.c_str(), DCF_Filetype_PEM).bad())
    return refuse("cannot load the authority " + files.ca + " (PEM expected)");
  layer->setCertificateVerification(verification);
  if (auto cond = layer->activateCipherSuites(); cond.bad())
    return refuse(std::string("cannot activate the BCP 195 ciphersuites: ") + cond.text());
  return layer;
}

} // namespace dcmstreams::net
