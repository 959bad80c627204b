// Command cert-manager-controller runs the CA and self-signed issuing path of the real
// cert-manager controllers for the choreoctl test clusters.
//
// cert-manager's own main (cmd/controller) is a separate, unpublished Go module, so it cannot
// be built from the module proxy. The controllers themselves live in the published
// github.com/cert-manager/cert-manager module and register into pkg/controller's registry when
// imported; this small main builds their shared context and runs every registered one.
// ACME, Vault, Venafi, the ingress/gateway shims and the webhook are left out on purpose:
// tests need Certificates from CA and self-signed (Cluster)Issuers only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"sync"
	"syscall"
	"time"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

func version() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/cert-manager/cert-manager" {
				return dep.Version
			}
		}
	}
	return "unknown"
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "path to the kubeconfig of the cluster to serve")
	clusterNS := flag.String("cluster-resource-namespace", "cert-manager",
		"namespace holding the secrets that ClusterIssuers refer to")
	workers := flag.Int("workers", 2, "workers per controller")
	showVersion := flag.Bool("version", false, "print the cert-manager version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("cert-manager-controller %s\n", version())
		return
	}
	logf.InitLogs()
	defer logf.FlushLogs()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")

	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   50,
		KubernetesAPIBurst: 100,
		IssuerOptions: controllerpkg.IssuerOptions{
			ClusterResourceNamespace: *clusterNS,
		},
		CertificateOptions: controllerpkg.CertificateOptions{
			// cert-manager's own defaults for the retry back-off of failed requests.
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cert-manager-controller: building the controller context: %v\n", err)
		os.Exit(1)
	}

	names := make([]string, 0, len(controllerpkg.Known()))
	for name := range controllerpkg.Known() {
		names = append(names, name)
	}
	sort.Strings(names)

	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, name := range names {
		ctrl, err := controllerpkg.Known()[name](factory)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cert-manager-controller: constructing %s: %v\n", name, err)
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ctrl.Run(*workers, ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	// The informer factories are shared by every Context the factory builds; start them once
	// all controllers have registered their informers.
	shared, err := factory.Build()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cert-manager-controller: %v\n", err)
		os.Exit(1)
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	shared.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	fmt.Fprintf(os.Stderr, "cert-manager-controller %s: running %v\n", version(), names)

	select {
	case err := <-errs:
		fmt.Fprintf(os.Stderr, "cert-manager-controller: controller failed: %v\n", err)
		stop()
		wg.Wait()
		os.Exit(1)
	case <-ctx.Done():
		wg.Wait()
	}
}
