package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdncni/sdncni/pkg/pki"
)

// runPKI is "sdncni-controller pki": create or renew OVN's certificates in Secrets of
// the namespace (pkg/pki), print what it wrote, and exit. The pki Job and CronJob run it.
func runPKI(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pki", flag.ContinueOnError)
	ns := fs.String("namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Secrets (default: $POD_NAMESPACE)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (empty: in-cluster)")
	leaf := fs.Duration("validity", 365*24*time.Hour, "validity of the server and client certificates")
	renew := fs.Duration("renew-before", 30*24*time.Hour, "renew a certificate this long before it expires")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ns == "" {
		return fmt.Errorf("pki: --namespace (or $POD_NAMESPACE) is required")
	}
	if *renew >= *leaf {
		return fmt.Errorf("pki: --renew-before %v must be shorter than --validity %v", *renew, *leaf)
	}
	var cfg *rest.Config
	var err error
	if *kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", *kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("pki: api config: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("pki: api client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep, err := pki.Ensure(ctx, c, *ns, pki.Config{LeafValidity: *leaf, RenewBefore: *renew})
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	fmt.Printf("pki: namespace %s: created %v, renewed %v\n", *ns, rep.Created, rep.Renewed)
	return nil
}
