package cnishim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/sdncni/sdncni/pkg/cniapi"
)

// SupportedVersions are the CNI spec versions the binary speaks. Older versions are left
// out on purpose: they have no GC/STATUS and a different result shape we do not test.
var SupportedVersions = version.PluginSupports("1.0.0", "1.1.0")

// Funcs returns the skel callbacks of the plugin. stdout is where ADD prints its result
// (os.Stdout in the binary).
func Funcs(stdout io.Writer) skel.CNIFuncs {
	s := &shim{stdout: stdout}
	return skel.CNIFuncs{
		Add:    func(a *skel.CmdArgs) error { return s.run("ADD", a) },
		Del:    func(a *skel.CmdArgs) error { return s.run("DEL", a) },
		Check:  func(a *skel.CmdArgs) error { return s.run("CHECK", a) },
		GC:     func(a *skel.CmdArgs) error { return s.run("GC", a) },
		Status: func(a *skel.CmdArgs) error { return s.run("STATUS", a) },
	}
}

type shim struct {
	stdout io.Writer
}

func (s *shim) run(cmd string, args *skel.CmdArgs) (err error) {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	log, verbose, closeLog := openLog(conf.LogFile)
	defer closeLog()
	start := time.Now()
	defer func() {
		attrs := []any{"cmd", cmd, "containerID", args.ContainerID, "netns", args.Netns,
			"ifname", args.IfName, "duration", time.Since(start).Round(time.Microsecond)}
		if err != nil {
			log.Error("cni command failed", append(attrs, "err", err)...)
			return
		}
		if verbose {
			log.Info("cni command", attrs...)
		}
	}()

	timeout := conf.timeout
	if cmd == "STATUS" {
		timeout = min(timeout, StatusTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := cniapi.NewClient(conf.Socket)

	if cmd == "STATUS" {
		resp, err := client.Status(ctx)
		if err != nil {
			return transportError(types.ErrPluginNotAvailable, cmd, timeout, err)
		}
		return respError(resp)
	}

	resp, err := client.Do(ctx, &cniapi.Request{
		Command:     cmd,
		ContainerID: args.ContainerID,
		Netns:       args.Netns,
		IfName:      args.IfName,
		Args:        args.Args,
		Path:        args.Path,
		Config:      args.StdinData,
	})
	if err != nil {
		return transportError(types.ErrTryAgainLater, cmd, timeout, err)
	}
	if err := respError(resp); err != nil {
		return err
	}
	if cmd != "ADD" {
		return nil
	}
	return s.printAdd(conf, resp)
}

// transportError is the CNI error for a request the controller did not answer: code
// (11, or 50 for STATUS) and a message that tells a controller that is down from one that
// is slow, each said once.
func transportError(code uint, cmd string, timeout time.Duration, err error) error {
	te, ok := errors.AsType[*cniapi.TransportError](err)
	if !ok {
		return err
	}
	if te.Connected {
		return types.NewError(code, fmt.Sprintf("sdncni-controller did not answer %s within %s", cmd, timeout), te.Err.Error())
	}
	return types.NewError(code, cniapi.ErrUnreachable.Error(), te.Err.Error())
}

// respError turns the controller's CNI error, if any, into the error skel prints.
func respError(resp *cniapi.Response) error {
	if resp.Error != nil {
		return resp.Error
	}
	return nil
}

func (s *shim) printAdd(conf *NetConf, resp *cniapi.Response) error {
	if len(resp.Result) == 0 {
		return errors.New("controller answered ADD without a result")
	}
	res, err := types100.NewResult(resp.Result)
	if err != nil {
		return fmt.Errorf("decode controller result: %w", err)
	}
	ours, err := types100.GetResult(res)
	if err != nil {
		return fmt.Errorf("convert controller result: %w", err)
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
			return types.NewError(types.ErrDecodingFailure, "cannot parse prevResult", err.Error())
		}
		prev, err := types100.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return types.NewError(types.ErrDecodingFailure, "cannot convert prevResult", err.Error())
		}
		ours = Merge(prev, ours)
	}
	out, err := ours.GetAsVersion(conf.CNIVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, "cannot convert result", err.Error())
	}
	return out.PrintTo(s.stdout)
}

// Merge appends ours to a chained plugin's previous result without dropping anything of
// it: interfaces are appended and our IPs' interface indexes shifted to match.
func Merge(prev, ours *types100.Result) *types100.Result {
	out := *prev
	offset := len(prev.Interfaces)
	out.Interfaces = append(append([]*types100.Interface{}, prev.Interfaces...), ours.Interfaces...)
	out.IPs = append([]*types100.IPConfig{}, prev.IPs...)
	for _, ip := range ours.IPs {
		c := *ip
		if c.Interface != nil {
			idx := *c.Interface + offset
			c.Interface = &idx
		}
		out.IPs = append(out.IPs, &c)
	}
	out.Routes = append(append([]*types.Route{}, prev.Routes...), ours.Routes...)
	if len(out.DNS.Nameservers) == 0 && len(out.DNS.Search) == 0 {
		out.DNS = ours.DNS
	}
	return &out
}

// openLog returns the command's logger. With a log file every command is logged; on
// stderr (which runtimes copy into their own logs) only failures are.
func openLog(path string) (log *slog.Logger, verbose bool, closeFn func()) {
	if path == "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), false, func() {}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		// The protocol must still work when the log cannot be written.
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), false, func() {}
	}
	return slog.New(slog.NewTextHandler(f, nil)), true, func() { _ = f.Close() }
}
