#pragma once
// DICOM peers the tests start on loopback: storescp (bit-preserving or not)
// and Orthanc, with its REST API read through curl.

#include "tests/support/process.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dcmstreams::fixtures {

/// A test certificate authority made with the openssl tool (RSA 2048, two
/// days), and the certificates it signs.
class test_authority {
public:
  explicit test_authority(const std::filesystem::path& dir);
  const std::filesystem::path& certificate() const { return certificate_; }

  struct issued {
    std::filesystem::path certificate, key;
  };
  /// A certificate for `subject_alt_name` ("IP:127.0.0.1", "DNS:host").
  issued issue(const std::string& name, const std::string& subject_alt_name) const;

private:
  std::filesystem::path dir_, certificate_, key_;
};

/// A storescp writing every instance it receives to a fresh folder.
class storescp_peer {
public:
  /// `extra` options go before the port ("+xa" to accept every transfer
  /// syntax); `echo_extra` are echoscu's to see it is up ("+tls ..." for a
  /// storescp that speaks TLS).
  storescp_peer(const std::filesystem::path& root, std::vector<std::string> extra = {},
                std::uint16_t port = 0, std::vector<std::string> echo_extra = {});
  ~storescp_peer();
  std::uint16_t port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::vector<std::filesystem::path> files() const;
  void stop();

private:
  std::filesystem::path dir_;
  std::uint16_t port_;
  std::unique_ptr<process> process_;
};

/// Orthanc 1.10.1 with its own storage, on free DICOM and HTTP ports.
class orthanc_peer {
public:
  /// `dicomweb_servers`: set, Orthanc loads Debian's DICOMweb plugin and
  /// knows these servers (the JSON of DicomWeb.Servers). `more_config`: more
  /// members of its configuration (", \"DicomTlsEnabled\": true, ...").
  /// `user`: "name:password", set, Orthanc asks every HTTP client (this
  /// one too) for that user.
  explicit orthanc_peer(const std::filesystem::path& root, const std::string& aet = "ORTHANC",
                        const std::string& dicomweb_servers = "",
                        const std::string& more_config = "", const std::string& user = "");
  ~orthanc_peer();
  std::uint16_t dicom_port() const { return dicom_port_; }
  std::uint16_t http_port() const { return http_port_; }
  /// GET on the REST API; the body.
  std::string get(const std::string& path) const;
  /// POST on the REST API with a JSON body; the body of the answer.
  std::string post(const std::string& path, const std::string& json) const;
  /// Stores a DICOM file through the REST API (POST /instances); its answer.
  std::string upload(const std::filesystem::path& file) const;
  /// Orthanc ids of every stored instance.
  std::vector<std::string> instances() const;
  /// The main DICOM tags of an instance, by keyword.
  std::map<std::string, std::string> tags(const std::string& instance) const;

private:
  std::uint16_t dicom_port_;
  std::uint16_t http_port_;
  std::string user_;
  std::unique_ptr<process> process_;
  /// curl with Orthanc's user, if it has one.
  std::vector<std::string> curl(std::vector<std::string> arguments) const;
};

} // namespace dcmstreams::fixtures
