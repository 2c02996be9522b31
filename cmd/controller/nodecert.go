package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/sdncni/sdncni/pkg/pki"
)

// nodeCertWait bounds the first request of a node's OVN certificate: the cluster role
// may start after the node (a fresh install); past it the container restarts and asks
// again.
const nodeCertWait = 5 * time.Minute

// ensureNodeCert is --ovn-node-cert-dir: the node makes its key and has its certificate
// signed by the cluster role (pkg/pki NodeCert) before it connects to OVN, points the
// --ovn-tls-key/--ovn-tls-cert at them and keeps them renewed until ctx ends.
func ensureNodeCert(ctx context.Context, o *options, log logr.Logger) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("api client: %w", err)
	}
	nc := &pki.NodeCert{CSRs: cs.CertificatesV1().CertificateSigningRequests(), Node: o.nodeName,
		Dir: o.nodeCertDir, CA: o.nbTLS.CA}
	wctx, cancel := context.WithTimeout(ctx, nodeCertWait)
	defer cancel()
	log.Info("ensuring the node's OVN client certificate", "dir", o.nodeCertDir, "signer", pki.SignerName)
	issued, err := nc.Ensure(wctx)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	_, due := nc.Due()
	log.Info("node OVN client certificate ready", "new", issued, "renewAt", due)
	o.nbTLS.Key, o.nbTLS.Cert = nc.KeyFile(), nc.CertFile()
	go nc.Run(ctx, time.Hour, log.WithName("node-cert"))
	return nil
}

// setupSigner is --sign-node-certs: the cluster role approves and signs the nodes' CSRs.
func setupSigner(mgr ctrl.Manager, o *options, log logr.Logger) error {
	ns, name, ok := strings.Cut(o.nodeServiceAccount, "/")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("--node-service-account %q: want namespace/name", o.nodeServiceAccount)
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("api client: %w", err)
	}
	s := &pki.Signer{Cache: mgr.GetCache(), CSRs: cs.CertificatesV1().CertificateSigningRequests(),
		Secrets: cs.CoreV1().Secrets(o.pkiNamespace), NodeUser: "system:serviceaccount:" + ns + ":" + name,
		Validity: o.nodeCertValidity, Log: log.WithName("ovn-node-signer")}
	return s.SetupWithManager(mgr)
}
