// Package pki creates and renews the certificates of OVN's databases: a CA, the
// databases' server certificate and the cluster role's client certificate, kept in
// Secrets of the install namespace ("sdncni-controller pki" runs it as a Job at install
// and daily), and each node's own client certificate, whose key is made on the node and
// which the cluster role signs through a Kubernetes CertificateSigningRequest
// (NodeCert, Signer; docs/deploy.md, "OVN over TLS").
package pki
