// Package pki creates and renews the certificates of OVN's databases: a CA, the
// databases' server certificate and the client certificate of the nodes
// (ovn-controller and sdncni-controller), kept in Secrets of the install namespace.
// "sdncni-controller pki" runs it as a Job at install and daily (docs/deploy.md).
package pki
