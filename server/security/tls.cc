#include "security/tls.h"

#include <fmt/format.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <limits>
#include <string>
#include <vector>

#include "observability/logging.h"

// gRPC only parses the PEM files when the server starts listening, and then reports a failure without
// naming the file. OpenSSL (which gRPC links) reads them here first, so a bad setup fails with a message
// that says which file is wrong and how.
namespace longnet::server {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

// A PEM file of the configuration, read whole: `flag` and `path` name it in messages.
struct PemFile {
  std::string flag;
  std::string path;
  std::string text;
};

absl::StatusOr<PemFile> read_pem(std::string_view flag, const std::string& path) {
  absl::StatusOr<std::string> text = read_config_text_file(flag, path);
  if (!text.ok()) return text.status();
  if (text->size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return absl::InvalidArgumentError(fmt::format("{} \"{}\": too large for a PEM file", flag, path));
  }
  return PemFile{std::string(flag), path, *std::move(text)};
}

BioPtr memory_bio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Every certificate in the file, in order; InvalidArgument when there is none.
absl::StatusOr<std::vector<X509Ptr>> certificates(const PemFile& file) {
  std::vector<X509Ptr> certs;
  BioPtr bio = memory_bio(file.text);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    certs.emplace_back(cert);
  ERR_clear_error();  // the read that ended the loop left an error behind
  if (certs.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "{} \"{}\": no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)", file.flag, file.path));
  }
  return certs;
}

// Declines to prompt for a passphrase (OpenSSL's default would read one from the terminal).
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*user*/) {
  return -1;
}

absl::StatusOr<KeyPtr> private_key(const PemFile& file) {
  BioPtr bio = memory_bio(file.text);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    const bool encrypted = file.text.find("ENCRYPTED") != std::string::npos;
    return absl::InvalidArgumentError(
        encrypted ? fmt::format("{} \"{}\": the private key is encrypted; give it unencrypted", file.flag,
                                file.path)
                  : fmt::format("{} \"{}\": no PEM private key in it (expected -----BEGIN PRIVATE KEY-----)",
                                file.flag, file.path));
  }
  return key;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> make_server_credentials(const ServerConfig& config) {
  if (config.tls_cert.empty()) {
    if (!config.tls_key.empty() || !config.tls_client_ca.empty()) {
      return absl::InvalidArgumentError(fmt::format(
          "--tls-key \"{}\" / --tls-client-ca \"{}\" given without --tls-cert: TLS needs the certificate",
          config.tls_key, config.tls_client_ca));
    }
    return grpc::InsecureServerCredentials();
  }
  if (config.tls_key.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("--tls-cert \"{}\" given without --tls-key: TLS needs the private key", config.tls_cert));
  }

  absl::StatusOr<PemFile> cert_file = read_pem("--tls-cert", config.tls_cert);
  if (!cert_file.ok()) return cert_file.status();
  absl::StatusOr<PemFile> key_file = read_pem("--tls-key", config.tls_key);
  if (!key_file.ok()) return key_file.status();
  absl::StatusOr<std::vector<X509Ptr>> chain = certificates(*cert_file);
  if (!chain.ok()) return chain.status();
  absl::StatusOr<KeyPtr> key = private_key(*key_file);
  if (!key.ok()) return key.status();
  X509* leaf = chain->front().get();
  if (X509_check_private_key(leaf, key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        fmt::format("--tls-key \"{}\" is not the private key of the first certificate in --tls-cert \"{}\"",
                    config.tls_key, config.tls_cert));
  }
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
    log_warn("-", "--tls-cert \"{}\": the certificate has expired; clients will refuse it", config.tls_cert);
  }

  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (!config.tls_client_ca.empty()) {
    absl::StatusOr<PemFile> ca_file = read_pem("--tls-client-ca", config.tls_client_ca);
    if (!ca_file.ok()) return ca_file.status();
    if (absl::Status status = certificates(*ca_file).status(); !status.ok()) return status;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    options.pem_root_certs = std::move(ca_file->text);
  }
  options.pem_key_cert_pairs.push_back({std::move(key_file->text), std::move(cert_file->text)});
  return grpc::SslServerCredentials(options);
}

}  // namespace longnet::server
