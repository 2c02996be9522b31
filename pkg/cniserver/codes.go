package cniserver

import (
	"context"
	"errors"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/podnet"
)

// CNI error codes of our own (100+ are the plugin's, per the spec).
const (
	// CodeAddressesExhausted: the network's address pool on this node is full.
	CodeAddressesExhausted uint = 100
	// CodeAlreadyAttached: ADD for an attachment (container ID, ifname) that exists, or
	// for an interface name the pod already has.
	CodeAlreadyAttached uint = 101
	// CodeStoreCorrupt: the address store is damaged; an operator must act (see docs).
	CodeStoreCorrupt uint = 102
)

// toCNIError maps an error from the manager to the CNI error the runtime sees.
func toCNIError(msg string, err error) *types.Error {
	var te *types.Error
	switch {
	case errors.As(err, &te):
		return te
	case errors.Is(err, ipam.ErrExhausted):
		return types.NewError(CodeAddressesExhausted, msg+": address pool exhausted", err.Error())
	case errors.Is(err, attach.ErrExists), errors.Is(err, podnet.ErrIfaceExists):
		return types.NewError(CodeAlreadyAttached, msg+": already attached", err.Error())
	case errors.Is(err, ipam.ErrCorrupt):
		return types.NewError(CodeStoreCorrupt, msg+": address store corrupt", err.Error())
	case errors.Is(err, attach.ErrNetworkNotReady):
		return types.NewError(types.ErrTryAgainLater, msg+": network not ready", err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return types.NewError(types.ErrTryAgainLater, msg+": timed out", err.Error())
	default:
		return types.NewError(types.ErrInternal, msg, err.Error())
	}
}
