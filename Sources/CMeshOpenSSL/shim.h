/*
 * Copyright 2026, swift-grpc-mesh contributors
 *
 * Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

// OpenSSL 3 (Debian's libssl-dev): TLS 1.2/1.3 for MeshNativeTransport. The helpers below wrap
// OpenSSL's macros (which Swift does not import) and its C callbacks; they hold no state.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/// TLS 1.2 or later, no session resumption (every handshake presents and verifies a full chain),
/// no TLS compression, no renegotiation.
static inline int mesh_ssl_ctx_configure(SSL_CTX *ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return 0;
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_num_tickets(ctx, 0) != 1) return 0;
  return 1;
}

static inline int mesh_ssl_ctx_add_chain_certificate(SSL_CTX *ctx, X509 *certificate) {
  return (int)SSL_CTX_add1_chain_cert(ctx, certificate);
}

static int mesh_ssl_accept_for_later_verification(int preverified, X509_STORE_CTX *store) {
  (void)preverified;
  (void)store;
  return 1;
}

/// Asks for (server) or accepts (client) the peer's certificate and leaves every check to the
/// mesh's verifier; a peer without a certificate fails the handshake. A server verifies its
/// client once the handshake completes and before any application data is read or written
/// (OpenSSL 3.0 suspends a handshake for verification only on a client).
static inline void mesh_ssl_ctx_require_peer_certificate(SSL_CTX *ctx) {
  SSL_CTX_set_verify(
    ctx,
    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
    mesh_ssl_accept_for_later_verification
  );
}

/// A client's verdict on its server, kept per connection (the SSL's app data points at it).
#define MESH_SSL_VERDICT_NONE 0
#define MESH_SSL_VERDICT_PENDING 1
#define MESH_SSL_VERDICT_ACCEPTED 2
#define MESH_SSL_VERDICT_REJECTED 3

static int mesh_ssl_client_verify(X509_STORE_CTX *store, void *arg) {
  (void)arg;
  SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
  int *verdict = ssl == NULL ? NULL : SSL_get_app_data(ssl);
  if (verdict == NULL) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  switch (*verdict) {
  case MESH_SSL_VERDICT_ACCEPTED:
    return 1;
  case MESH_SSL_VERDICT_NONE:
  case MESH_SSL_VERDICT_PENDING:
    // Suspends the handshake (SSL_ERROR_WANT_RETRY_VERIFY) until the mesh's verifier answers;
    // the next SSL_do_handshake asks again.
    *verdict = MESH_SSL_VERDICT_PENDING;
    return SSL_set_retry_verify(ssl) ? 1 : 0;
  default:
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
}

/// A client verifies its server during the handshake: the handshake waits for the mesh's
/// verifier (OpenSSL 3's retry-verify), so nothing of the client's own certificate is sent to a
/// server it has not accepted, and a rejected server gets an alert. `verdict` (which must outlive
/// `ssl`) is where the verifier's answer goes.
static inline void mesh_ssl_ctx_verify_server_later(SSL_CTX *ctx) {
  SSL_CTX_set_cert_verify_callback(ctx, mesh_ssl_client_verify, NULL);
}

static inline int mesh_ssl_set_verdict_slot(SSL *ssl, int *verdict) {
  return SSL_set_app_data(ssl, verdict);
}

static int mesh_ssl_select_h2(
  SSL *ssl,
  const unsigned char **out,
  unsigned char *outlen,
  const unsigned char *in,
  unsigned int inlen,
  void *arg
) {
  static const unsigned char h2[] = {2, 'h', '2'};
  (void)ssl;
  (void)arg;
  unsigned char *selected = NULL;
  if (SSL_select_next_proto(&selected, outlen, h2, sizeof(h2), in, inlen)
      != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

/// A server accepts only clients offering ALPN "h2" (gRPC over TLS requires it).
static inline void mesh_ssl_ctx_select_h2(SSL_CTX *ctx) {
  SSL_CTX_set_alpn_select_cb(ctx, mesh_ssl_select_h2, NULL);
}

/// A client offers ALPN "h2". 0 on success (as SSL_set_alpn_protos).
static inline int mesh_ssl_offer_h2(SSL *ssl) {
  static const unsigned char h2[] = {2, 'h', '2'};
  return SSL_set_alpn_protos(ssl, h2, sizeof(h2));
}

static inline int mesh_ssl_set_server_name(SSL *ssl, const char *name) {
  return (int)SSL_set_tlsext_host_name(ssl, name);
}

static int mesh_ssl_no_password(char *buffer, int size, int rwflag, void *arg) {
  (void)buffer;
  (void)size;
  (void)rwflag;
  (void)arg;
  return 0;
}

/// A PEM private key from memory; never prompts for a password (an encrypted key fails).
static inline EVP_PKEY *mesh_ssl_read_private_key(const void *bytes, int count) {
  BIO *bio = BIO_new_mem_buf(bytes, count);
  if (bio == NULL) return NULL;
  EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, mesh_ssl_no_password, NULL);
  BIO_free(bio);
  return key;
}

static inline int mesh_ssl_chain_count(SSL *ssl) {
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
  return chain == NULL ? 0 : sk_X509_num(chain);
}

/// The peer's chain as sent (on a client the leaf is first; on a server it is not included).
static inline X509 *mesh_ssl_chain_certificate(SSL *ssl, int index) {
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
  return chain == NULL ? NULL : sk_X509_value(chain, index);
}
