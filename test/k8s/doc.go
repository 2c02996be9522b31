// Package k8s is the real-cluster tier: sdncni installed with kubectl apply -k on a
// two-node Kubernetes cluster of kubelets and containerds (hack/k8s-cluster.sh), driven
// only through the API and the nodes' own tools, as a platform team would use it.
package k8s
