# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
#
# Consul's part of deploy/docker-compose.yml, mounted in /consul/config. Each greeter registers a
# gRPC check of its health service over TLS (GRPCUseTLS), and the greeters accept only mutual TLS
# from the mesh CA: Consul must trust that CA to verify the greeter, and present a mesh
# certificate of its own to be let in. `enable_agent_tls_for_checks` makes the agent use these
# files for its checks; without a `verify_*` setting they change nothing else in a dev agent.
#
# The greeters register their checks with TLSServerName `greeter`, a name their certificate
# carries (deploy/make-certs.sh), so the check's hostname verification passes whatever address it
# dials.
enable_agent_tls_for_checks = true

tls {
  internal_rpc {
    ca_file   = "/certs/ca.crt"
    cert_file = "/certs/services/consul-agent.crt"
    key_file  = "/certs/services/consul-agent-key.pem"
  }
}
