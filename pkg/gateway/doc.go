// Package gateway gives every VPN a management port on each node that holds blocks of
// it: an OVS internal port bound to a logical switch port of the VPN, with one address
// of the node's first block. Through it the node reaches its pods of every VPN (kubelet
// probes), and pods leave the cluster: the VPN's router sends what is not for the VPN to
// the port of the sender's node (a src-ip static route per block), and the node forwards
// and masquerades it. An nftables table keeps VPNs apart inside the node: nothing is
// forwarded from one management port to another, and nothing enters a management port
// from elsewhere unless it answers a connection the node or a pod opened.
//
// It is the "local gateway" of ovn-kubernetes, per VPN; see docs/gateway.md.
package gateway
